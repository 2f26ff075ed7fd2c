"""The perception probe in the report: how well the model read each grid, and the split of its
image gap into reading (T − T̂) and the rest (T̂ − I), as markdown and a PNG plot.

Definitions are in ``crossmath.metrics.probe`` and docs/probe.md.
"""

from __future__ import annotations

from pathlib import Path

from crossmath.metrics.probe import Decomposition, ProbeSummary, decompose
from crossmath.metrics.scorecard import Evaluation
from crossmath.metrics.transcription import TRANSCRIBED
from crossmath.summary.cells import gap_cell, stat_cell
from crossmath.summary.figures import new_figure, save_figure

PROBE_COLUMNS = {"cell_acc": "cells", "number_cell_acc": "numbers",
                 "operator_cell_acc": "operators", "equals_cell_acc": "=",
                 "blank_cell_acc": "blanks", "empty_cell_acc": "empty", "exact_rate": "exact grids",
                 "shape_error_rate": "shape errors", "row_error_rate": "wrong rows",
                 "column_error_rate": "wrong columns", "table_rate": "tables"}
PARTS = (("reading", "T − T̂ (reading)", "#DD8452"), ("rest", "T̂ − I (the rest)", "#4C72B0"))


def probe_section(evaluation: Evaluation, probe: ProbeSummary, model: str) -> list[str]:
    """The report's probe section: the reading table, then the decomposition table."""
    lines = ["## Perception probe", "",
             "The model copied each image as a markdown table (`transcribe`), then solved its "
             "own table as a text puzzle (T̂, `transcribed`). Cells: share of the grid's cells "
             "copied right, the table laid over the grid from its top-left corner; shape errors "
             "(tables with other row or column counts) are counted apart. Percent, mean ± std "
             "over samples (docs/probe.md).", "",
             "| style | " + " | ".join(PROBE_COLUMNS.values()) + " |",
             "|---|" + "---:|" * len(PROBE_COLUMNS)]
    for style in probe.styles(model):
        group = probe.group(model, style)
        cells = [stat_cell(group.metric(name)) for name in PROBE_COLUMNS]
        lines.append(f"| {style} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += legibility_table(evaluation, probe, model)
    parts = decompose(evaluation, model)
    if parts:
        lines += ["### Reading or reasoning: T − I = (T − T̂) + (T̂ − I)", "",
                  "Macro accuracy in percent and gaps in percentage points, paired by puzzle, "
                  "with 95% bootstrap intervals. T − T̂ is what misreading the grid costs; "
                  "T̂ − I is the rest of the image gap, with the grid read as well as the model "
                  "reads it. The reading share is (T − T̂) / (T − I); it can leave [0, 1] when "
                  "T̂ beats T or falls below I.", "",
                  "| style | T | T̂ | I | T − I | T − T̂ (reading) | T̂ − I (rest) | "
                  "reading share |", "|---|" + "---:|" * 7]
        lines += [_decomposition_row(evaluation, model, part) for part in parts]
        lines.append("")
    return lines


def legibility_table(evaluation: Evaluation, probe: ProbeSummary, model: str) -> list[str]:
    """Per style: how well the grid was read (cells, exact grids) beside how well the image
    was answered (I, macro accuracy): which styles are hard to read, and what that costs."""
    lines = ["### Legibility per style", "",
             "| style | cell accuracy | exact grids | image accuracy (I) |", "|---|---:|---:|---:|"]
    for style in probe.styles(model):
        group = probe.group(model, style)
        lines.append(f"| {style} | {stat_cell(group.metric('cell_acc'))} | "
                     f"{stat_cell(group.metric('exact_rate'))} | "
                     f"{_macro(evaluation, model, 'image', style)} |")
    return [*lines, ""]


def _decomposition_row(evaluation: Evaluation, model: str, part: Decomposition) -> str:
    text_style = evaluation.styles(model, "text")[0]
    accuracies = [_macro(evaluation, model, "text", text_style),
                  _macro(evaluation, model, TRANSCRIBED, part.style),
                  _macro(evaluation, model, "image", part.style)]
    share = "–" if part.reading_share is None else f"{100 * part.reading_share:.0f}%"
    gaps = [gap_cell(estimate) for estimate in (part.total, part.reading, part.rest)]
    return f"| {part.style} | " + " | ".join([*accuracies, *gaps, share]) + " |"


def _macro(evaluation: Evaluation, model: str, modality: str, style: str) -> str:
    group = evaluation.group(model, modality, style)
    return stat_cell(group.macro if group else None)


def probe_console(probe: ProbeSummary, evaluation: Evaluation, model: str) -> list[str]:
    """Console lines: cell accuracy and exact grids pooled, and the split of T − I."""
    group = probe.group(model)
    lines = [f"probe: cells {stat_cell(group.metric('cell_acc'))}, numbers "
             f"{stat_cell(group.metric('number_cell_acc'))}, exact grids "
             f"{stat_cell(group.metric('exact_rate'))}, shape errors "
             f"{stat_cell(group.metric('shape_error_rate'))} (all styles)"]
    for part in decompose(evaluation, model):
        if part.style == group.style:
            lines.append(f"probe: T-I {part.total.gap:+.1f} pp = reading (T-That) "
                         f"{part.reading.gap:+.1f} + rest (That-I) {part.rest.gap:+.1f}")
    return lines


def plot_decomposition(evaluation: Evaluation, path: str | Path, model: str) -> Path | None:
    """Per style, T − I as a bar split into reading and the rest, each part with its 95%
    interval; None when the evaluation lacks one of the three gaps."""
    parts = decompose(evaluation, model)
    if not parts:
        return None
    figure = new_figure(figsize=(max(6.0, 1.4 * len(parts) + 3), 4.8), layout="constrained")
    axes = figure.add_subplot()
    xs = range(len(parts))
    for offset, (name, label, color) in zip((-0.2, 0.2), PARTS):
        estimates = [getattr(part, name) for part in parts]
        axes.bar([x + offset for x in xs], [e.gap for e in estimates], 0.4, label=label,
                 color=color, yerr=[[e.gap - e.ci_low for e in estimates],
                                    [e.ci_high - e.gap for e in estimates]], capsize=3)
    axes.scatter(list(xs), [part.total.gap for part in parts], color="black", zorder=3,
                 label="T − I")
    axes.axhline(0.0, color="grey", linewidth=1, linestyle="--")
    axes.set_xticks(list(xs), [part.style for part in parts])
    axes.set_ylabel("macro accuracy gap (percentage points)")
    axes.set_title(f"{model}: the image gap, reading vs the rest (95% intervals)")
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    return save_figure(figure, path)
