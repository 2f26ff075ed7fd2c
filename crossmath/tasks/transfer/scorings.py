"""A transfer task's replies scored two ways, side by side: ``rule`` and ``official``.

``rule`` is ours (``TransferTask.judge``): deterministic, the same reply always the same
verdict. ``official`` is the dataset's own evaluation: MMMU's script, ported exactly
(``TransferTask.official``), or MathVerse's two-stage judge, whose verdicts the evaluation's
judge rounds produce. Both are tallied the same way (``tallies``); the comparison counts the
replies the two scorings judge differently. A failed request is wrong under both.

Everything a run reports of a task is a :class:`TaskScores`: both summaries, the comparison,
and a few counts (``notes``): the items skipped as unreadable, MMMU's random picks and the
score to expect over them, the MathVerse judge's verdicts that could not be read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from crossmath.tasks.transfer.item import NO_ANSWER, Judgement, Reply, TaskItem
from crossmath.tasks.transfer.tallies import OFFICIAL, RULE, Outcome, TaskSummary, summarize

SKIPPED_ITEMS = "skipped_items"
RANDOM_PICKS = "official/random_picks"
EXPECTED_ACC = "official/expected_acc"
UNJUDGED = "official/unjudged"


class ReplyJudge(Protocol):
    """What scores a task's replies (``crossmath.tasks.transfer.task.TransferTask``)."""

    name: str

    def judge(self, item: TaskItem, output: str) -> Judgement:
        """Our verdict on one reply (``rule``)."""
        ...

    def official(self, replies: Sequence[Reply]) -> list[Judgement] | None:
        """The official evaluation's verdicts, where it is a rule that runs here."""
        ...


@dataclass(frozen=True)
class ScoringComparison:
    """How often the two scorings disagree, over the replies both scored."""

    n: int
    rule_only: int  # right by rule, wrong officially
    official_only: int  # right officially, wrong by rule

    @property
    def disagree(self) -> int:
        return self.rule_only + self.official_only

    @property
    def disagreement_rate(self) -> float:
        """Percent of replies the two scorings judge differently."""
        return 100.0 * self.disagree / self.n if self.n else 0.0


@dataclass(frozen=True)
class TaskScores:
    """A task's tallies under ``rule`` and (where it ran) ``official``."""

    task: str
    rule: TaskSummary
    official: TaskSummary | None = None
    comparison: ScoringComparison | None = None
    notes: Mapping[str, float] = field(default_factory=dict)

    def flat_metrics(self) -> dict[str, float]:
        """``transfer/<task>/<scoring>/...`` for each scoring, the disagreement rate and the
        notes, for MLflow."""
        metrics = self.rule.flat_metrics()
        if self.official is not None:
            metrics.update(self.official.flat_metrics())
        if self.comparison is not None:
            metrics[f"transfer/{self.task}/disagreement_rate"] = \
                self.comparison.disagreement_rate
        metrics.update({f"transfer/{self.task}/{name}": float(value)
                        for name, value in self.notes.items()})
        return metrics

    def to_dict(self) -> dict[str, Any]:
        return {RULE: self.rule.to_dict(),
                OFFICIAL: None if self.official is None else self.official.to_dict(),
                "comparison": None if self.comparison is None else asdict(self.comparison),
                "notes": dict(self.notes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaskScores":
        rule = TaskSummary.from_dict(data[RULE])
        official = data.get(OFFICIAL)
        comparison = data.get("comparison")
        return cls(rule.task, rule,
                   None if official is None else TaskSummary.from_dict(official),
                   None if comparison is None else ScoringComparison(**comparison),
                   dict(data.get("notes", {})))


def rule_judgements(task: ReplyJudge, replies: Sequence[Reply]) -> list[Judgement]:
    """Our verdict on each reply (a failed request: no answer, wrong)."""
    return [NO_ANSWER if reply.output is None else task.judge(reply.item, reply.output)
            for reply in replies]


def score_replies(task: ReplyJudge, replies: Sequence[Reply], fields: Sequence[str], *,
                  official: Sequence[Judgement] | None = None,
                  notes: Mapping[str, float] | None = None) -> TaskScores:
    """The replies tallied under ``rule`` and, given its verdicts (aligned with
    ``replies``), ``official``; MMMU's official verdicts are computed here when none are
    given, with its random picks and the score to expect over them in the notes."""
    notes = dict(notes or {})
    rule = rule_judgements(task, replies)
    if official is None:
        official = task.official(replies)
        if official is not None:
            picks = [verdict for verdict in official if verdict.chance is not None]
            notes[RANDOM_PICKS] = len(picks)
            notes[EXPECTED_ACC] = (100.0 * sum(v.expected for v in official) / len(official)
                                   if official else 0.0)
    rule_summary = _summary(task.name, replies, rule, fields, RULE)
    if official is None:
        return TaskScores(task.name, rule_summary, notes=notes)
    pairs = list(zip(rule, official))
    comparison = ScoringComparison(len(pairs),
                                   sum(r.correct and not o.correct for r, o in pairs),
                                   sum(o.correct and not r.correct for r, o in pairs))
    return TaskScores(task.name, rule_summary,
                      _summary(task.name, replies, official, fields, OFFICIAL), comparison,
                      notes)


def _summary(task: str, replies: Sequence[Reply], judgements: Sequence[Judgement],
             fields: Sequence[str], scoring: str) -> TaskSummary:
    return summarize(task, [Outcome.of(reply.item, judgement)
                            for reply, judgement in zip(replies, judgements)], fields, scoring)
