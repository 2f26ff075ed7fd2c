"""Accuracy of a transfer task under one scoring: overall, per subject, per question type,
per any field.

Plain functions over :class:`Outcome` records (one per judged reply: an item answered
``k`` times gives ``k`` outcomes), so the same code serves a test, a notebook and the
pipeline. Accuracy is the share of outcomes judged correct, each outcome counting once, as
MMMU and MathVerse both report it; percentages, as CrossMath's metrics are. An outcome whose
field holds several values (an MMMU question with a table and a photograph) counts once in
the group of each.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from crossmath.tasks.transfer.item import Judgement, TaskItem

# What an MLflow metric name may not hold (a subfield such as "Algebra & Number Theory").
_NOT_IN_METRIC_NAMES = re.compile(r"[^\w\-. /]")
RULE = "rule"  # our deterministic rules, the default scoring
OFFICIAL = "official"  # the dataset's own evaluation (MMMU's script, MathVerse's judge)


@dataclass(frozen=True)
class Outcome:
    """One judged reply, with the item fields results are grouped by."""

    item_id: str
    question_type: str
    breakdown: Mapping[str, str | tuple[str, ...]]
    correct: bool
    answered: bool

    @classmethod
    def of(cls, item: TaskItem, judgement: Judgement) -> "Outcome":
        return cls(item.item_id, item.question_type, item.breakdown, judgement.correct,
                   bool(judgement.answered))


@dataclass(frozen=True)
class Tally:
    """Counts of one group of outcomes."""

    n: int
    correct: int
    answered: int

    @property
    def accuracy(self) -> float:
        """Percent of outcomes judged correct (0 for an empty group)."""
        return 100.0 * self.correct / self.n if self.n else 0.0

    @property
    def answer_rate(self) -> float:
        """Percent of outcomes where an answer could be read at all."""
        return 100.0 * self.answered / self.n if self.n else 0.0


def tally(outcomes: Iterable[Outcome]) -> Tally:
    outcomes = list(outcomes)
    return Tally(len(outcomes), sum(o.correct for o in outcomes), sum(o.answered for o in outcomes))


def tally_by(outcomes: Iterable[Outcome], field_name: str) -> dict[str, Tally]:
    """One tally per value of ``field_name``: ``question_type`` or a breakdown field (an
    outcome with several values of it counts in each of their groups)."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        value = (outcome.question_type if field_name == "question_type"
                 else outcome.breakdown.get(field_name))
        if value is None:
            raise KeyError(f"outcome {outcome.item_id} has no field {field_name!r}")
        for each in (value,) if isinstance(value, str) else value:
            groups[each].append(outcome)
    return {value: tally(members) for value, members in sorted(groups.items())}


@dataclass(frozen=True)
class TaskSummary:
    """A task's tallies under one scoring: overall and per group of each field summarised."""

    task: str
    overall: Tally
    groups: Mapping[str, Mapping[str, Tally]] = field(default_factory=dict)
    scoring: str = RULE

    def flat_metrics(self) -> dict[str, float]:
        """Metric name -> value for MLflow: ``transfer/<task>/<scoring>/acc`` and
        ``/answer_rate``, ``transfer/<task>/<scoring>/<field>/<value>/acc`` per group (field
        ``type`` for the question type)."""
        prefix = f"transfer/{self.task}/{self.scoring}"
        metrics = {f"{prefix}/acc": self.overall.accuracy,
                   f"{prefix}/answer_rate": self.overall.answer_rate}
        for field_name, tallies in self.groups.items():
            label = "type" if field_name == "question_type" else field_name
            for value, counts in tallies.items():
                metrics[f"{prefix}/{label}/{_NOT_IN_METRIC_NAMES.sub('_', value)}/acc"] = \
                    counts.accuracy
        return metrics

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "scoring": self.scoring, "overall": asdict(self.overall),
                "groups": {name: {value: asdict(counts) for value, counts in tallies.items()}
                           for name, tallies in self.groups.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaskSummary":
        return cls(data["task"], Tally(**data["overall"]),
                   {name: {value: Tally(**counts) for value, counts in tallies.items()}
                    for name, tallies in data["groups"].items()},
                   data.get("scoring", RULE))


def summarize(task: str, outcomes: Iterable[Outcome],
              fields: Sequence[str] = ("subject", "question_type"),
              scoring: str = RULE) -> TaskSummary:
    """Overall tally and one per value of each of ``fields``, under ``scoring``."""
    outcomes = list(outcomes)
    return TaskSummary(task, tally(outcomes),
                       {name: tally_by(outcomes, name) for name in fields}, scoring)
