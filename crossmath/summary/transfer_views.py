"""A transfer task's evaluation in words: the markdown report and the console lines.

Both scorings side by side (``rule``, ours; ``official``, the dataset's own), how often they
disagree, and the counts beside them (MMMU's random picks and the score to expect over them,
unreadable judge verdicts, items skipped). The tallies come from ``crossmath.tasks``; how
replies are read and judged is in docs/transfer.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from crossmath.tasks.transfer.scorings import EXPECTED_ACC, RANDOM_PICKS, UNJUDGED, TaskScores
from crossmath.tasks.transfer.tallies import Tally

FIELD_LABELS = {"question_type": "question type"}
NOT_RUN = "not run"


def transfer_report(scores: TaskScores, model: str, skipped: Sequence[str] = ()) -> str:
    """Accuracy under both scorings, overall and per value of each breakdown field, in
    percent; then what the scorings disagree on and what was skipped."""
    rule, official = scores.rule, scores.official
    lines = [f"# crossmath transfer report: {model} on {scores.task}", "",
             f"{rule.overall.n} replies judged (every sample of every item counts once), two "
             "ways: **rule** (ours, deterministic: a reply without a readable answer is wrong, "
             "never guessed) and **official** (the dataset's own evaluation: "
             f"{_official_kind(scores.task)}). Accuracy and answered (share where an answer "
             "could be read at all) in percent; docs/transfer.md says how replies are read and "
             "where the two scorings differ.", "",
             "| group | replies | rule | official | answered (rule) |",
             "|---|---:|---:|---:|---:|",
             _row("all", rule.overall, None if official is None else official.overall), ""]
    for field_name, tallies in rule.groups.items():
        label = FIELD_LABELS.get(field_name, field_name)
        others = {} if official is None else official.groups.get(field_name, {})
        lines += [f"## By {label}", "",
                  f"| {label} | replies | rule | official | answered (rule) |",
                  "|---|---:|---:|---:|---:|",
                  *(_row(value, counts, others.get(value)) for value, counts in tallies.items()),
                  ""]
    lines += ["## The two scorings", "", *_comparison_lines(scores), ""]
    if skipped:
        lines += [f"## Items skipped ({len(skipped)})", "",
                  "Rows of the dataset that could not be made items, left out of every number:",
                  "", *(f"- {line}" for line in skipped), ""]
    return "\n".join(lines)


def _official_kind(task: str) -> str:
    return ("MathVerse's two-stage judge, asked of task.judge" if task.startswith("mathverse")
            else "MMMU's own script, ported exactly, random picks included")


def _row(label: str, rule: Tally, official: Tally | None) -> str:
    other = NOT_RUN if official is None else f"{official.accuracy:.1f}"
    return f"| {label} | {rule.n} | {rule.accuracy:.1f} | {other} | {rule.answer_rate:.1f} |"


def _comparison_lines(scores: TaskScores) -> list[str]:
    if scores.comparison is None:
        return ["The official scoring was not run (MathVerse's needs a judge model: "
                "`+model@task.judge=<model> ...`, docs/transfer.md)."]
    comparison, notes = scores.comparison, scores.notes
    lines = [f"They disagree on {comparison.disagree} of {comparison.n} replies "
             f"({comparison.disagreement_rate:.1f}%): {comparison.rule_only} right by rule "
             f"only, {comparison.official_only} right officially only."]
    if RANDOM_PICKS in notes:
        lines.append(f"The official parser read no option in {int(notes[RANDOM_PICKS])} "
                     "replies and picked one at random (seeded as MMMU's script is); over its "
                     f"possible picks the official score is {notes[EXPECTED_ACC]:.1f} on "
                     "average.")
    if notes.get(UNJUDGED):
        lines.append(f"The judge's verdict could not be read (neither 0 nor 1) for "
                     f"{int(notes[UNJUDGED])} replies, scored wrong; MathVerse's script would "
                     "have asked again.")
    return lines


def transfer_console(scores: TaskScores, skipped: Sequence[str] = ()) -> str:
    """The lines printed at the end of a transfer task's run."""
    rule, official = scores.rule, scores.official
    overall = rule.overall
    lines = [f"{scores.task}: accuracy {overall.accuracy:.1f}% of {overall.n} replies "
             f"(answered {overall.answer_rate:.1f}%) by rule; official "
             + (NOT_RUN if official is None else f"{official.overall.accuracy:.1f}%")
             + ("" if scores.comparison is None
                else f", disagreeing on {scores.comparison.disagree} replies")]
    for field_name, tallies in rule.groups.items():
        parts = ", ".join(f"{value} {counts.accuracy:.1f}" for value, counts in tallies.items())
        lines.append(f"  by {FIELD_LABELS.get(field_name, field_name)}: {parts}")
    if skipped:
        lines.append(f"  {len(skipped)} unreadable item(s) skipped (listed in report.md)")
    return "\n".join(lines)


def write_transfer_report(scores: TaskScores, out_dir: str | Path, model: str,
                          skipped: Sequence[str] = ()) -> list[Path]:
    """``report.md`` in ``out_dir``; returns the files written."""
    path = Path(out_dir) / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(transfer_report(scores, model, skipped), encoding="utf-8")
    return [path]

