"""Every task by name: what ``task=<name>`` evaluates (``conf/task/<name>.yaml``).

``crossmath`` (CrossMath's own puzzles, the default), ``mathverse-vision`` and ``mmmu-val``
(transfer tasks), each a ``crossmath.tasks.questions.Task``: the pipeline asks it for the
questions of one evaluation, whatever it is.
"""

from __future__ import annotations

from crossmath.tasks.crossmath.task import CrossMathTask
from crossmath.tasks.mathverse.task import MathVerseVision
from crossmath.tasks.mmmu.task import MmmuValidation
from crossmath.tasks.questions import Task

TASKS: dict[str, Task] = {task.name: task
                          for task in (CrossMathTask(), MathVerseVision(), MmmuValidation())}


def get_task(name: str) -> Task:
    """The task called ``name``; a ``KeyError`` listing the known names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None
