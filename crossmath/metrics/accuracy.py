"""Accuracy of answers against gold, as the CrossMath release defines it.

Read off the release's ``calc_metric.py``:

- **macro**: 1 for a puzzle only if the predicted token list equals the gold list (same
  length, same order, string equality).
- **micro**: per puzzle, the fraction of gold positions whose predicted token at that
  position is equal (a prediction shorter than gold is wrong at the missing positions, extra
  tokens are ignored); averaged over puzzles.
- **step-wise**: blanks pooled over all puzzles of the run and grouped by their step label
  into step1, step2, step3, step4+; the rate is correct blanks / blanks of that group (pooled
  over blanks, not averaged per puzzle).
- With k samples, each metric is computed per sample index, then reported as mean and sample
  standard deviation (ddof=1) over the k values, in percent.

Two additions of ours: the **answer rate** (share of puzzles with a non-empty answer), and a
step rate of ``None`` where a run has no blank of that group (the release reports 0.0 there,
which :func:`release_step_rate` reproduces for the release-format summary).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Sequence

STEP_GROUPS: tuple[str, ...] = ("step1", "step2", "step3", "step4+")


def step_group(label: int) -> str | None:
    """The reporting group of a blank's wave: 1, 2, 3 or 4 and deeper; None if unknown (< 1)."""
    if label < 1:
        return None
    return STEP_GROUPS[min(label, 4) - 1]


@dataclass(frozen=True)
class PuzzleScore:
    """How one answer to one puzzle scored: the unit every aggregate is built from."""

    exact: bool
    n_correct: int
    n_gold: int
    answered: bool
    step_correct: dict[str, int] = field(default_factory=dict)
    step_total: dict[str, int] = field(default_factory=dict)

    @property
    def micro(self) -> float:
        return self.n_correct / self.n_gold


def position_hits(pred: Sequence[str] | None, gold: Sequence[str]) -> list[bool]:
    """Per gold position, whether the predicted token at that position equals it (the release's
    comparison: missing positions are wrong, extra predicted tokens are ignored)."""
    predicted = list(pred) if pred is not None else []
    return [i < len(predicted) and predicted[i] == token for i, token in enumerate(gold)]


def score_answer(pred: Sequence[str] | None, gold: Sequence[str], steps: Sequence[int]) -> PuzzleScore:
    """Score one answer; ``pred`` None (no answer, or no prediction at all) is wrong everywhere."""
    if not gold:
        raise ValueError("a puzzle must have at least one gold token")
    if len(steps) != len(gold):
        raise ValueError(f"{len(steps)} step labels for {len(gold)} gold tokens")
    predicted = list(pred) if pred is not None else []
    hits = position_hits(predicted, gold)
    step_correct: dict[str, int] = {}
    step_total: dict[str, int] = {}
    for hit, label in zip(hits, steps):
        group = step_group(label)
        if group is None:
            continue
        step_total[group] = step_total.get(group, 0) + 1
        step_correct[group] = step_correct.get(group, 0) + int(hit)
    return PuzzleScore(
        exact=predicted == list(gold),
        n_correct=sum(hits),
        n_gold=len(gold),
        answered=bool(predicted),
        step_correct=step_correct,
        step_total=step_total,
    )


@dataclass(frozen=True)
class RunAccuracy:
    """One sample index over a set of answers; rates are fractions in [0, 1].

    ``n_items`` counts the answers scored: one per puzzle, or one per (puzzle, style) pair
    when a scorecard pools styles.
    """

    n_items: int
    macro: float
    micro: float
    answer_rate: float
    step_correct: dict[str, int]
    step_total: dict[str, int]

    def step_rate(self, group: str) -> float | None:
        total = self.step_total.get(group, 0)
        return self.step_correct.get(group, 0) / total if total else None

    def to_dict(self) -> dict:
        return {
            "n_items": self.n_items, "macro": self.macro, "micro": self.micro,
            "answer_rate": self.answer_rate, "step_correct": dict(self.step_correct),
            "step_total": dict(self.step_total),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "RunAccuracy":
        return cls(
            # metrics.json files written before the rename call it n_puzzles
            n_items=int(data["n_items"] if "n_items" in data else data["n_puzzles"]),
            macro=float(data["macro"]),
            micro=float(data["micro"]), answer_rate=float(data["answer_rate"]),
            step_correct={k: int(v) for k, v in data["step_correct"].items()},
            step_total={k: int(v) for k, v in data["step_total"].items()},
        )


def run_accuracy(scores: Iterable[PuzzleScore]) -> RunAccuracy:
    """Aggregate one run's puzzle scores (sums in puzzle order, as the release does)."""
    n = 0
    macro_sum = micro_sum = answered = 0.0
    step_correct = {group: 0 for group in STEP_GROUPS}
    step_total = {group: 0 for group in STEP_GROUPS}
    for score in scores:
        n += 1
        macro_sum += float(score.exact)
        micro_sum += score.micro
        answered += float(score.answered)
        for group, count in score.step_total.items():
            step_total[group] += count
            step_correct[group] += score.step_correct[group]
    if n == 0:
        raise ValueError("cannot score a run without answers")
    return RunAccuracy(n, macro_sum / n, micro_sum / n, answered / n, step_correct, step_total)


def release_step_rate(run: RunAccuracy, group: str) -> float:
    """The release's step rate: 0.0 where the run has no blank of the group."""
    rate = run.step_rate(group)
    return 0.0 if rate is None else rate


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation over the k runs, in percent."""

    mean: float
    std: float

    @classmethod
    def of(cls, fractions: Sequence[float]) -> "MeanStd":
        """From per-run fractions; one run has std 0, no runs is NaN."""
        if not fractions:
            return cls(math.nan, math.nan)
        percents = [100.0 * value for value in fractions]
        std = statistics.stdev(percents) if len(percents) > 1 else 0.0
        return cls(statistics.mean(percents), std)

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}

    def __format__(self, spec: str) -> str:
        spec = spec or ".1f"
        return f"{self.mean:{spec}} ± {self.std:{spec}}"
