"""The numbers a reader wants first, under short sortable names: the paper's table at a glance.

CrossMath: macro accuracy of each modality pooled over its styles (``acc/text``,
``acc/image``, ``acc/hybrid``; with the perception probe also ``acc/transcribed``, T̂) and the
two modality gaps on it (``acc/gap_T-I``, ``acc/gap_T-TI``), in percent and points. A transfer task: its overall accuracy
(``acc/<task>``). The detailed metrics keep their own names (``text/all/macro_acc``,
``gap/T-I/macro_acc``...); the headline repeats a few of them.

All the headline names share the ``acc/`` prefix, which the MLflow UI makes one chart section
of, and none is a prefix of a detailed name (``gap/T-I`` would be one of
``gap/T-I/macro_acc``: a file and a folder of one name in a file-based store).
"""

from __future__ import annotations

from crossmath.metrics.scorecard import Evaluation
from crossmath.metrics.transcription import TRANSCRIBED
from crossmath.tasks.transfer.tallies import TaskSummary

PREFIX = "acc/"
MODALITIES = ("text", "image", "hybrid", TRANSCRIBED)
GAPS = ("T-I", "T-TI")
GAP_METRIC = "macro_acc"
# The saved view's columns (tracking.ui_view): the paper's table.
CROSSMATH_HEADLINE = (*(f"{PREFIX}{modality}" for modality in MODALITIES[:3]),
                      *(f"{PREFIX}gap_{name}" for name in GAPS))


def crossmath_headline(evaluation: Evaluation, model: str) -> dict[str, float]:
    """The modalities and gaps this evaluation has, in the paper's order."""
    headline: dict[str, float] = {}
    for modality in MODALITIES:
        group = evaluation.group(model, modality)
        if group is not None:
            headline[f"{PREFIX}{modality}"] = group.macro.mean
    for name in GAPS:
        gap = evaluation.gap(model, name, GAP_METRIC)
        if gap is not None:
            headline[f"{PREFIX}gap_{name}"] = gap.estimate.gap
    return headline


def transfer_headline(summary: TaskSummary) -> dict[str, float]:
    return {f"{PREFIX}{summary.task}": summary.overall.accuracy}
