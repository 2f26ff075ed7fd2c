"""A transfer task's evaluation in words: the markdown report and the console lines.

The tallies come from ``crossmath.tasks.tallies``; how replies are read and judged is in
docs/transfer.md.
"""

from __future__ import annotations

from pathlib import Path

from crossmath.tasks.tallies import Tally, TaskSummary

FIELD_LABELS = {"question_type": "question type"}


def transfer_report(summary: TaskSummary, model: str) -> str:
    """Accuracy overall and per value of each breakdown field, in percent."""
    overall = summary.overall
    lines = [f"# crossmath transfer report: {model} on {summary.task}", "",
             f"{overall.n} replies judged (every sample of every item counts once). Accuracy: "
             "share judged correct; answered: share where an answer could be read at all "
             "(a reply without one is wrong, never guessed). Percent; docs/transfer.md says "
             "how replies are read and where the scoring differs from the official one.", "",
             "| group | replies | accuracy | answered |", "|---|---:|---:|---:|",
             _row("all", overall), ""]
    for field_name, tallies in summary.groups.items():
        label = FIELD_LABELS.get(field_name, field_name)
        lines += [f"## By {label}", "", f"| {label} | replies | accuracy | answered |",
                  "|---|---:|---:|---:|",
                  *(_row(value, counts) for value, counts in tallies.items()), ""]
    return "\n".join(lines)


def _row(label: str, counts: Tally) -> str:
    return (f"| {label} | {counts.n} | {counts.accuracy:.1f} | {counts.answer_rate:.1f} |")


def transfer_console(summary: TaskSummary) -> str:
    """The lines printed at the end of a transfer task's run."""
    overall = summary.overall
    lines = [f"{summary.task}: accuracy {overall.accuracy:.1f}% of {overall.n} replies "
             f"(answered {overall.answer_rate:.1f}%)"]
    for field_name, tallies in summary.groups.items():
        parts = ", ".join(f"{value} {counts.accuracy:.1f}" for value, counts in tallies.items())
        lines.append(f"  by {FIELD_LABELS.get(field_name, field_name)}: {parts}")
    return "\n".join(lines)


def write_transfer_report(summary: TaskSummary, out_dir: str | Path, model: str) -> list[Path]:
    """``report.md`` in ``out_dir``; returns the files written."""
    path = Path(out_dir) / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(transfer_report(summary, model), encoding="utf-8")
    return [path]
