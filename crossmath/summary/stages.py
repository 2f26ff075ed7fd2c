"""A fine-tuning story's evaluations side by side: the base model, then each tuned stage.

Each stage (``base``, ``sft``, ``grpo``) was evaluated on CrossMath (with the perception probe
when it ran) and on each transfer task. ``compare_stages`` lines up their headline numbers,
styles pooled and macro accuracy throughout: accuracy per modality (T, I, TI, T̂), the gaps
(T−I, T−TI and the probe's T−T̂ and T̂−I, with 95% intervals), the probe's reading (cells,
numbers, exact grids, the share of T−I that reading explains) and each task's accuracy; and
every number's change from the base model. As markdown, JSON and flat MLflow metrics
(``<stage>/<name>`` and ``delta/<stage>/<name>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from crossmath.metrics.probe import ProbeSummary, decompose
from crossmath.metrics.rows import ALL
from crossmath.metrics.scorecard import GAP_PAIRS, MODALITY_ORDER, Evaluation
from crossmath.summary.cells import MISSING, gap_cell
from crossmath.tasks.crossmath.questions import PuzzleScores
from crossmath.tasks.questions import Scores
from crossmath.tasks.transfer.questions import TransferScores
from crossmath.tasks.transfer.tallies import TaskSummary

MODALITY_SYMBOLS = {"text": "T", "image": "I", "hybrid": "TI", "transcribed": "T̂"}
GAP_SYMBOLS = {"T-TI": "T − TI", "T-I": "T − I", "T-That": "T − T̂", "That-I": "T̂ − I"}
PROBE_HEADLINES = {"cell_acc": "cells", "number_cell_acc": "numbers", "exact_rate": "exact grids"}


@dataclass(frozen=True)
class StageResults:
    """What one stage's evaluations scored; ``incomplete`` names those with failed requests."""

    stage: str
    model: str
    scorecard: Evaluation | None = None  # CrossMath (with the probe's T̂ when it ran)
    probe: ProbeSummary | None = None
    transfer: Mapping[str, TaskSummary] = field(default_factory=dict)
    incomplete: tuple[str, ...] = ()

    @classmethod
    def of(cls, stage: str, model: str, scores: Mapping[str, Scores],
           incomplete: Sequence[str] = ()) -> "StageResults":
        """A stage's results from the scores of its evaluations (task name -> scores), read by
        their kind: CrossMath's scorecard and probe, each transfer task's ``rule`` tallies."""
        scorecard, probe, transfer = None, None, {}
        for task, found in scores.items():
            if isinstance(found, PuzzleScores):
                scorecard, probe = found.evaluation, found.probe
            elif isinstance(found, TransferScores):
                transfer[task] = found.summary
            else:
                raise TypeError(f"{task}: scores of kind {type(found).__name__} have no place "
                                "in a stage's results")
        return cls(stage, model, scorecard, probe, transfer, tuple(incomplete))

    def headline(self) -> dict[str, float]:
        """The stage's numbers by name, percent (gaps in percentage points)."""
        numbers: dict[str, float] = {}
        if self.scorecard is not None:
            evaluation, model = self.scorecard, self.model
            for modality in evaluation.modalities(model):
                numbers[f"{modality}/macro_acc"] = evaluation.group(model, modality).macro.mean
            for name in GAP_PAIRS:
                gap = evaluation.gap(model, name, "macro_acc")
                if gap is not None:
                    numbers[f"gap/{name}/macro_acc"] = gap.estimate.gap
            numbers.update(self._probe_headline(evaluation))
        for task, summary in self.transfer.items():
            numbers[f"transfer/{task}/rule/acc"] = summary.overall.accuracy
        return numbers

    def _probe_headline(self, evaluation: Evaluation) -> dict[str, float]:
        group = self.probe.group(self.model) if self.probe else None
        if group is None:
            return {}
        numbers = {f"probe/{name}": group.metric(name).mean for name in PROBE_HEADLINES
                   if group.metric(name) is not None}
        for part in decompose(evaluation, self.model):
            if part.style == ALL and part.reading_share is not None:
                numbers["probe/reading_share"] = 100.0 * part.reading_share
        return numbers


@dataclass(frozen=True)
class StageComparison:
    stages: tuple[StageResults, ...]

    @property
    def base(self) -> StageResults:
        return self.stages[0]

    def deltas(self) -> dict[str, dict[str, float]]:
        """Each later stage's change from the base, for the numbers both have."""
        base = self.base.headline()
        return {stage.stage: {name: value - base[name]
                              for name, value in stage.headline().items() if name in base}
                for stage in self.stages[1:]}

    def flat_metrics(self) -> dict[str, float]:
        flat = {f"{stage.stage}/{name}": value
                for stage in self.stages for name, value in stage.headline().items()}
        flat.update({f"delta/{stage}/{name}": value for stage, changes in self.deltas().items()
                     for name, value in changes.items()})
        return flat

    def to_dict(self) -> dict[str, Any]:
        return {"stages": [{"stage": s.stage, "model": s.model, "incomplete": list(s.incomplete),
                            "numbers": s.headline()} for s in self.stages],
                "deltas": self.deltas()}

    def markdown(self) -> str:
        """Tables for CrossMath, the probe and the transfer tasks, stages as rows."""
        names = " → ".join(f"{s.stage} ({s.model})" for s in self.stages)
        lines = [f"# Fine-tuning story: {names}", "",
                 "Macro accuracy in percent, styles pooled; gaps in percentage points with 95% "
                 "bootstrap intervals paired by puzzle; Δ: change from the base model. "
                 "docs/probe.md and docs/transfer.md define the probe and the tasks.", ""]
        with_scorecard = [s for s in self.stages if s.scorecard is not None]
        if with_scorecard:
            lines += self._crossmath_table(with_scorecard)
        lines += self._transfer_table()
        incomplete = [f"{s.stage}: {', '.join(s.incomplete)}" for s in self.stages if s.incomplete]
        if incomplete:
            lines += ["**Incomplete evaluations** (failed requests counted as wrong; rerun to "
                      "retry them): " + "; ".join(incomplete), ""]
        return "\n".join(lines)

    def _crossmath_table(self, stages: Sequence[StageResults]) -> list[str]:
        modalities = [m for m in MODALITY_ORDER
                      if any(m in s.scorecard.modalities(s.model) for s in stages)]
        gaps = [name for name in GAP_PAIRS
                if any(s.scorecard.gap(s.model, name, "macro_acc") for s in stages)]
        probe = [name for name in (*(f"probe/{n}" for n in PROBE_HEADLINES), "probe/reading_share")
                 if any(name in s.headline() for s in stages)]
        head = ([MODALITY_SYMBOLS[m] for m in modalities] + [GAP_SYMBOLS[g] for g in gaps]
                + [PROBE_HEADLINES.get(p.split("/")[1], "reading share") for p in probe])
        lines = ["## CrossMath", "", "| stage | " + " | ".join(head) + " |",
                 "|---|" + "---:|" * len(head)]
        base = self.base.headline()
        for stage in stages:
            numbers = stage.headline()
            cells = [_with_delta(numbers.get(f"{m}/macro_acc"), base.get(f"{m}/macro_acc"),
                                 stage is self.base) for m in modalities]
            for name in gaps:
                gap = stage.scorecard.gap(stage.model, name, "macro_acc")
                cells.append(MISSING if gap is None else gap_cell(gap.estimate))
            cells += [_with_delta(numbers.get(p), base.get(p), stage is self.base) for p in probe]
            lines.append(f"| {stage.stage} | " + " | ".join(cells) + " |")
        return lines + [""]

    def _transfer_table(self) -> list[str]:
        tasks = list(dict.fromkeys(task for s in self.stages for task in s.transfer))
        if not tasks:
            return []
        lines = ["## Transfer tasks", "", "| task | " + " | ".join(
            s.stage for s in self.stages) + " |", "|---|" + "---:|" * len(self.stages)]
        for task in tasks:
            base = self.base.transfer.get(task)
            cells = [_with_delta(s.transfer[task].overall.accuracy if task in s.transfer else None,
                                 base.overall.accuracy if base else None, s is self.base)
                     for s in self.stages]
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        return lines + [""]


def _with_delta(value: float | None, base: float | None, is_base: bool) -> str:
    if value is None:
        return "–"
    if is_base or base is None:
        return f"{value:.1f}"
    return f"{value:.1f} (Δ {value - base:+.1f})"


def compare_stages(stages: Sequence[StageResults]) -> StageComparison:
    """The comparison of ``stages``, the first being the base model."""
    if not stages:
        raise ValueError("a comparison needs at least the base model's stage")
    return StageComparison(tuple(stages))
