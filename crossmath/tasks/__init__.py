"""Transfer tasks: benchmarks beside CrossMath that a fine-tuned model is also measured on.

Each task reads its dataset's published parquet files (a local copy, or fetched from the
Hugging Face Hub), turns every question into a :class:`TaskItem` with its finished prompt,
judges a model's raw reply by our rules (:meth:`TransferTask.judge`, the ``rule`` scoring)
and, where the official evaluation is itself a rule, as it does (``official``: MMMU's
script, ported; MathVerse's official judge is a model, run by the pipeline with the prompts
of ``mathverse_judge``). ``scorings`` tallies both, side by side. Plain functions on plain
data: this package imports neither Ray nor torch. See docs/transfer.md.
"""

from crossmath.tasks.catalog import TASKS, get_task
from crossmath.tasks.item import Judgement, Reply, TaskItem, prompt_key
from crossmath.tasks.published import TaskDataError
from crossmath.tasks.scorings import TaskScores, score_replies
from crossmath.tasks.tallies import OFFICIAL, RULE, Outcome, TaskSummary, summarize
from crossmath.tasks.task import TaskData, TransferTask

__all__ = ["OFFICIAL", "RULE", "TASKS", "Judgement", "Outcome", "Reply", "TaskData",
           "TaskDataError", "TaskItem", "TaskScores", "TaskSummary", "TransferTask",
           "get_task", "prompt_key", "score_replies", "summarize"]
