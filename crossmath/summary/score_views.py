"""An evaluation's scores as people see them, chosen by the scores' kind: the console lines at
the end of a run, the report files, and the headline numbers (``headline``).

Each kind of scores a task makes (``crossmath.tasks``: CrossMath's ``PuzzleScores``, the
transfer tasks' ``TransferScores``) has its ``ScoreViews`` here; the scores themselves are plain
data (``metrics.json``, MLflow's metrics) and know nothing of how they are shown. A new kind of
scores adds its views to ``VIEWS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from crossmath.summary.consistency_views import consistency_console, consistency_section
from crossmath.summary.headline import crossmath_headline, transfer_headline
from crossmath.summary.transfer_views import transfer_console, write_transfer_report
from crossmath.summary.views import console_summary
from crossmath.summary.views import write_report as write_crossmath_report
from crossmath.tasks.crossmath.questions import PuzzleScores
from crossmath.tasks.questions import Scores
from crossmath.tasks.transfer.questions import TransferScores


@dataclass(frozen=True)
class ScoreViews:
    """How one kind of scores is shown: each view takes the scores and the model's name."""

    console: Callable[[Scores, str], str]
    write_report: Callable[[Scores, Path, str], list[Path]]  # into a folder; the files
    headline: Callable[[Scores, str], dict[str, float]]


def _puzzle_console(scores: PuzzleScores, model: str) -> str:
    lines = [console_summary(scores.evaluation, model, scores.probe)]
    if scores.consistency is not None and scores.consistency.flagged:
        lines += consistency_console(scores.consistency, scores.consistent, model)
    return "\n".join(lines)


def _puzzle_report(scores: PuzzleScores, folder: Path, model: str) -> list[Path]:
    consistency = scores.consistency
    appendix = (consistency_section(consistency, scores.consistent, model)
                if consistency is not None and consistency.flagged else [])
    return write_crossmath_report(scores.evaluation, folder, model, scores.probe,
                                  appendix).paths


VIEWS: dict[type, ScoreViews] = {
    PuzzleScores: ScoreViews(
        console=_puzzle_console,
        write_report=_puzzle_report,
        headline=lambda scores, model: crossmath_headline(scores.evaluation, model)),
    TransferScores: ScoreViews(
        console=lambda scores, model: transfer_console(scores.scores, scores.skipped),
        write_report=lambda scores, folder, model: write_transfer_report(
            scores.scores, folder, model, scores.skipped),
        headline=lambda scores, model: transfer_headline(scores.summary)),
}


def views_of(scores: Scores) -> ScoreViews:
    """The views of ``scores``' kind; a ``KeyError`` naming the kinds that have views."""
    try:
        return VIEWS[type(scores)]
    except KeyError:
        raise KeyError(f"no views for scores of kind {type(scores).__name__}; known: "
                       f"{sorted(kind.__name__ for kind in VIEWS)}") from None


def console(scores: Scores, model: str) -> str:
    """The lines printed at the end of a run."""
    return views_of(scores).console(scores, model)


def write_report(scores: Scores, folder: Path, model: str) -> list[Path]:
    """``report.md`` and plots in ``folder``; returns the files written."""
    return views_of(scores).write_report(scores, folder, model)


def headline(scores: Scores, model: str) -> dict[str, float]:
    """The few numbers a reader wants first, under short names (``headline``)."""
    return views_of(scores).headline(scores, model)
