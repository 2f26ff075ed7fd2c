"""The transfer tasks by name: ``mathverse-vision`` and ``mmmu-val``."""

from __future__ import annotations

from crossmath.tasks.mathverse import MathVerseVision
from crossmath.tasks.mmmu import MmmuValidation
from crossmath.tasks.task import TransferTask

TASKS: dict[str, TransferTask] = {task.name: task for task in (MathVerseVision(), MmmuValidation())}


def get_task(name: str) -> TransferTask:
    """The task called ``name``; a ``KeyError`` listing the known names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown transfer task {name!r}; known: {sorted(TASKS)}") from None
