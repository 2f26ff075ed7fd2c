"""Transfer tasks: benchmarks beside CrossMath that a fine-tuned model is also measured on.

Each task reads its dataset's published parquet files (a local copy, or fetched from the
Hugging Face Hub), turns every question into a :class:`TaskItem` with its finished prompt,
and judges a model's raw reply by rule (:meth:`TransferTask.judge`); ``tallies`` turns the
judgements into accuracy overall, per subject and per question type. Plain functions on
plain data: this package imports neither Ray nor torch. See docs/transfer.md.
"""

from crossmath.tasks.catalog import TASKS, get_task
from crossmath.tasks.item import Judgement, TaskItem, prompt_key
from crossmath.tasks.published import TaskDataError
from crossmath.tasks.tallies import Outcome, TaskSummary, summarize
from crossmath.tasks.task import TransferTask

__all__ = ["TASKS", "Judgement", "Outcome", "TaskDataError", "TaskItem", "TaskSummary",
           "TransferTask", "get_task", "prompt_key", "summarize"]
