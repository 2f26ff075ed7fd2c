"""What an evaluation asks: one registry of tasks, each behind one ``Questions`` interface.

``get_task(name)`` (``registry``) gives the task ``task=<name>`` evaluates: ``crossmath``, the
benchmark's own puzzles in text, image and both (with the perception probe's second round),
or a transfer task beside it that a fine-tuned model is also measured on, ``mathverse-vision``
and ``mmmu-val``. A task makes the ``Questions`` of one evaluation (``questions``): the units of
each round with their request ids, how their predictions are scored, what its data is, its
prediction table; the pipeline runs them, whatever they are.

A transfer task (``transfer``) reads its dataset's published parquet files (a local copy, or
fetched from the Hugging Face Hub), turns every question into a :class:`TaskItem` with its
finished prompt, judges a model's raw reply by our rules (:meth:`TransferTask.judge`, the
``rule`` scoring) and, where the official evaluation is itself a rule, as it does
(``official``: MMMU's script, ported; MathVerse's official judge is a model, asked in rounds
after the model's with its own prompts: ``mathverse``). ``transfer.scorings`` tallies both,
side by side. Plain functions on plain data: this package imports neither Ray nor torch, nor
the pipeline or the summary above it. See docs/transfer.md.
"""

from crossmath.tasks.questions import AskContext, Questions, Scores, Task
from crossmath.tasks.registry import TASKS, get_task
from crossmath.tasks.transfer.item import Judgement, Reply, TaskItem, prompt_key
from crossmath.tasks.transfer.published import TaskDataError
from crossmath.tasks.transfer.scorings import TaskScores, score_replies
from crossmath.tasks.transfer.tallies import OFFICIAL, RULE, Outcome, TaskSummary, summarize
from crossmath.tasks.transfer.task import TaskData, TransferTask

__all__ = ["OFFICIAL", "RULE", "TASKS", "AskContext", "Judgement", "Outcome", "Questions",
           "Reply", "Scores", "Task", "TaskData", "TaskDataError", "TaskItem", "TaskScores",
           "TaskSummary", "TransferTask", "get_task", "prompt_key", "score_replies",
           "summarize"]
