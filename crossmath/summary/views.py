"""Human-facing views of an :class:`~crossmath.metrics.Evaluation`: markdown tables and PNG plots.

Plots are drawn with matplotlib's object API on the Agg canvas (``figures``), so this is safe
inside workers and tests; the perception probe's section and plot are in ``probe_views``.
Functions return the markdown text or the paths they wrote; logging them anywhere (MLflow)
is the caller's business.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from crossmath.metrics.accuracy import STEP_GROUPS, MeanStd
from crossmath.metrics.probe import ProbeSummary
from crossmath.metrics.scorecard import (
    ALL,
    GAP_METRICS,
    GAP_PAIRS,
    Evaluation,
    GapResult,
    unique_in_order,
)
from crossmath.metrics.transcription import TRANSCRIBED
from crossmath.summary.cells import gap_cell, interval, stat_cell
from crossmath.summary.figures import new_figure, save_figure
from crossmath.summary.probe_views import plot_decomposition, probe_console, probe_section

MODALITY_LABELS = {"text": "text (T)", "image": "image (I)", "hybrid": "hybrid (TI)",
                   TRANSCRIBED: "own transcription (T̂)"}
METRIC_LABELS = {"macro_acc": "macro", "micro_acc": "micro", "step1_acc": "step1",
                 "step2_acc": "step2", "step3_acc": "step3", "step4plus_acc": "step4+",
                 "answer_rate": "tagged", "lenient_macro_acc": "lenient macro"}
ACCURACY_COLUMNS = ("macro_acc", "micro_acc", "step1_acc", "step2_acc", "step3_acc",
                    "step4plus_acc", "answer_rate")
DIAGNOSTIC_LABELS = {"answer_tag_rate": "tagged of answered", "wrong_count_rate": "wrong count",
                     "non_integer_rate": "non-integer", "error_rate": "failed",
                     "lenient_macro_acc": "lenient macro", "lenient_micro_acc": "lenient micro"}
ANSWER_RULE_NOTES = {
    "release": "the release's rule (tokens of the last `<answer>` block of the whole output)",
    "after_thinking": "the last `<answer>` block once the thinking is removed (not the release's rule)",
}
_COLORS = {"text": "#4C72B0", "image": "#DD8452", "hybrid": "#55A868", TRANSCRIBED: "#8172B3"}
LABEL_WIDTH = 30  # characters per line of a run's label in the comparison plot
GAP_COLORS = {"T-TI": "#55A868", "T-I": "#DD8452", "T-That": "#8172B3", "That-I": "#C44E52"}


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    accuracy_plot: Path
    step_plot: Path
    gap_plot: Path | None  # None when no gap could be formed (e.g. text only)
    probe_plot: Path | None = None  # None without the probe's three gaps (docs/probe.md)

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.markdown, self.accuracy_plot, self.step_plot, self.gap_plot,
                            self.probe_plot) if p]


@dataclass(frozen=True)
class Comparison:
    markdown: str
    markdown_path: Path
    plot_path: Path


# ---------------------------------------------------------------- one run


def markdown_report(evaluation: Evaluation, model: str | None = None, *, title: str | None = None,
                    probe: ProbeSummary | None = None) -> str:
    """Accuracy tables (overall and per difficulty) and the gap table of one model, and the
    perception probe's section when it ran."""
    model = evaluation.only_model(model)
    lines = [f"# {title or f'crossmath report: {model}'}", ""]
    overall = evaluation.group(model, evaluation.modalities(model)[0])
    if overall is not None:
        lines += [f"{overall.n_puzzles} puzzles, {overall.n_samples} sample(s) per request; "
                  f"answers read by {_rule_note(evaluation)}. Accuracies in percent, mean ± "
                  "sample std over the samples; step-wise accuracy pools every blank of that "
                  "solving depth; `all` pools the styles.", ""]
    lines += ["## Accuracy", "", *accuracy_table(evaluation, model, [ALL]), ""]
    diagnostics = _diagnostics_table(evaluation, model)
    if diagnostics:
        lines += ["## Answer format", "",
                  "Beside accuracy, never replacing it (percent, mean ± std over samples). "
                  "failed: requests without a response; tagged of answered: responses with "
                  "an answer block (the accuracy table's tagged counts every request); wrong "
                  "count: answers whose number of values is not the number of blanks; "
                  "non-integer: answers with a value that is not a plain non-negative integer "
                  "(both among tagged); lenient: accuracy once formatting is forgiven "
                  "(docs/scoring.md).", "", *diagnostics, ""]
    difficulties = [d for d in evaluation.difficulties(model) if d != ALL]
    if len(difficulties) > 1:
        lines += ["## Accuracy by difficulty", "", *accuracy_table(evaluation, model, difficulties), ""]
    gaps = [gap for gap in evaluation.gaps if gap.model == model]
    if gaps:
        metrics = [m for m in GAP_METRICS if any(g.metric == m for g in gaps)]
        lines += ["## Modality gaps", "",
                  "Percentage points, paired by puzzle (each puzzle's score averaged over "
                  "samples and styles first), with the 95% percentile bootstrap interval over "
                  "puzzles and p from a paired sign-flip permutation test.", "",
                  "| gap | style | " + " | ".join(f"{METRIC_LABELS[m]} (pp)" for m in metrics)
                  + " | puzzles |", "|---|---|" + "---:|" * (len(metrics) + 1)]
        for name, style in unique_in_order((g.name, g.style) for g in gaps):
            found = [evaluation.gap(model, name, m, style) for m in metrics]
            cells = [_gap_cell(g) if g else "–" for g in found]
            n = next(g.estimate.n_puzzles for g in found if g)
            lines.append(f"| {name} | {style} | " + " | ".join(cells) + f" | {n} |")
        lines.append("")
    if probe is not None:
        lines += probe_section(evaluation, probe, model)
    return "\n".join(lines)


def console_summary(evaluation: Evaluation, model: str | None = None,
                    probe: ProbeSummary | None = None) -> str:
    """The short table printed at the end of a run: accuracy per modality and style, the gaps
    pooled over styles, and the probe's reading and split of T−I when it ran."""
    model = evaluation.only_model(model)
    lines = accuracy_table(evaluation, model, [ALL])
    diagnostics = _diagnostics_table(evaluation, model)
    if diagnostics:
        lines += ["answer format (failed: no response; wrong count and non-integer among tagged):",
                  *diagnostics]
    for gap in evaluation.gaps:
        if gap.model == model and gap.style == ALL:
            lines.append(f"gap {gap.name} {METRIC_LABELS[gap.metric]}: {gap.estimate.gap:+.1f} pp, "
                         f"95% CI {interval(gap.estimate)}, p={_p(gap.estimate.p_value)}")
    if probe is not None:
        lines += probe_console(probe, evaluation, model)
    return "\n".join(lines)


def accuracy_table(evaluation: Evaluation, model: str, difficulties: list[str]) -> list[str]:
    return _group_table(evaluation, model, difficulties, {n: METRIC_LABELS[n] for n in ACCURACY_COLUMNS})


def _diagnostics_table(evaluation: Evaluation, model: str) -> list[str]:
    """The format diagnostics of each style, or nothing for an evaluation saved without them."""
    groups = [g for g in evaluation.groups if g.model == model and g.difficulty == ALL]
    if not any(g.formats for g in groups):
        return []
    return _group_table(evaluation, model, [ALL], DIAGNOSTIC_LABELS)


def _group_table(evaluation: Evaluation, model: str, difficulties: list[str],
                 columns: Mapping[str, str]) -> list[str]:
    """One row per modality, style (and difficulty), one column per metric; undefined is –."""
    names = list(columns)
    with_difficulty = difficulties != [ALL]
    head = "| modality | style |" + (" difficulty |" if with_difficulty else "")
    head += "".join(f" {columns[n]} |" for n in names)
    rule = "|---|---|" + ("---|" if with_difficulty else "") + "---:|" * len(names)
    rows = [head, rule]
    for modality in evaluation.modalities(model):
        for style in evaluation.styles(model, modality):
            for difficulty in difficulties:
                group = evaluation.group(model, modality, style, difficulty)
                if group is None:
                    continue
                stats = [group.metric(n) for n in names]
                cells = "".join(f" {stat_cell(stat)} |" for stat in stats)
                row = f"| {modality} | {style} |" + (f" {difficulty} |" if with_difficulty else "")
                rows.append(row + cells)
    return rows


def plot_accuracy(evaluation: Evaluation, path: str | Path, model: str | None = None) -> Path:
    """Macro and micro accuracy per style, one bar per modality, std as error bars."""
    model = evaluation.only_model(model)
    modalities = evaluation.modalities(model)
    styles = unique_in_order(s for m in modalities for s in evaluation.styles(model, m) if s != ALL) + [ALL]
    figure = new_figure(figsize=(max(6.0, 1.6 * len(styles) + 2), 6.5), layout="constrained")
    for row, metric in enumerate(("macro_acc", "micro_acc")):
        axes = figure.add_subplot(2, 1, row + 1)
        width = 0.8 / max(1, len(modalities))
        for i, modality in enumerate(modalities):
            stats = [_stat(evaluation, model, modality, style, metric) for style in styles]
            xs = [x + (i - (len(modalities) - 1) / 2) * width for x in range(len(styles))]
            axes.bar(xs, [s.mean if s else math.nan for s in stats], width,
                     yerr=[s.std if s else 0.0 for s in stats], capsize=3,
                     label=MODALITY_LABELS.get(modality, modality), color=_COLORS.get(modality))
        axes.set_xticks(range(len(styles)), styles)
        axes.set_ylim(0, 105)
        axes.set_ylabel(f"{METRIC_LABELS[metric]} accuracy (%)")
        axes.grid(axis="y", alpha=0.3)
    figure.axes[0].set_title(f"{model}: accuracy per modality and style")
    figure.axes[0].legend(loc="upper right", fontsize="small")
    return save_figure(figure, path)


def plot_step_depth(evaluation: Evaluation, path: str | Path, model: str | None = None) -> Path:
    """Blank accuracy per solving depth (styles pooled), one line per modality."""
    model = evaluation.only_model(model)
    figure = new_figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for modality in evaluation.modalities(model):
        group = evaluation.group(model, modality, ALL)
        stats = [group.step(step) if group else None for step in STEP_GROUPS]
        axes.errorbar(range(len(STEP_GROUPS)), [s.mean if s else math.nan for s in stats],
                      yerr=[s.std if s else 0.0 for s in stats], marker="o", capsize=3,
                      label=MODALITY_LABELS.get(modality, modality), color=_COLORS.get(modality))
    axes.set_xticks(range(len(STEP_GROUPS)), list(STEP_GROUPS))
    axes.set_ylim(0, 105)
    axes.set_xlabel("solving depth of the blank")
    axes.set_ylabel("blank accuracy (%)")
    axes.set_title(f"{model}: accuracy per step depth (all styles)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return save_figure(figure, path)


def plot_gaps(evaluation: Evaluation, path: str | Path, model: str | None = None) -> Path | None:
    """Each gap with its 95% interval, macro and micro side by side; None if there is no gap."""
    model = evaluation.only_model(model)
    gaps = [gap for gap in evaluation.gaps if gap.model == model]
    if not gaps:
        return None
    rows = unique_in_order((g.name, g.style) for g in gaps)
    figure = new_figure(figsize=(9.0, 1.0 + 0.45 * len(rows)), layout="constrained")
    for column, metric in enumerate(("macro_acc", "micro_acc")):
        axes = figure.add_subplot(1, 2, column + 1, sharey=figure.axes[0] if column else None)
        labelled: set[str] = set()
        for y, (name, style) in enumerate(rows):
            gap = evaluation.gap(model, name, metric, style)
            if gap is None:
                continue
            e = gap.estimate
            kind = "styles pooled" if style == ALL else "one style"
            axes.errorbar([e.gap], [y], xerr=[[e.gap - e.ci_low], [e.ci_high - e.gap]], fmt="o",
                          capsize=3, color="black" if style == ALL else "#4C72B0",
                          label=None if kind in labelled else kind)
            labelled.add(kind)
        axes.axvline(0.0, color="grey", linewidth=1, linestyle="--")
        axes.set_xlabel(f"{METRIC_LABELS[metric]} gap (percentage points)")
        axes.grid(axis="x", alpha=0.3)
        if column == 0:
            axes.set_yticks(range(len(rows)), [f"{name} {style}" for name, style in rows])
            axes.invert_yaxis()
    figure.axes[-1].legend(fontsize="small", loc="best")
    figure.suptitle(f"{model}: modality gaps with 95% bootstrap intervals")
    return save_figure(figure, path)


def write_report(evaluation: Evaluation, out_dir: str | Path, model: str | None = None,
                 probe: ProbeSummary | None = None, appendix: Sequence[str] = ()) -> ReportFiles:
    """``report.md`` (ending with the lines of ``appendix``), ``accuracy.png``, ``steps.png``
    and ``gaps.png`` of one model in ``out_dir``, and ``probe.png`` when the probe's gaps are
    there."""
    model = evaluation.only_model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / "report.md"
    text = markdown_report(evaluation, model, probe=probe)
    markdown.write_text("\n".join([text, "", *appendix]) if appendix else text, encoding="utf-8")
    return ReportFiles(markdown, plot_accuracy(evaluation, out / "accuracy.png", model),
                       plot_step_depth(evaluation, out / "steps.png", model),
                       plot_gaps(evaluation, out / "gaps.png", model),
                       plot_decomposition(evaluation, out / "probe.png", model))


# ---------------------------------------------------------------- several runs


def compare_runs(
    evaluations: Mapping[str, Evaluation],
    out_dir: str | Path,
    *,
    metric: str = "macro_acc",
    style: str = ALL,
    stem: str = "comparison",
    ceilings: Mapping[str, float] | None = None,
) -> Comparison:
    """Models × modality table with gaps, as markdown and a PNG, for several runs.

    ``evaluations`` maps a run label (what was evaluated: model, adapter, backend) to its
    evaluation; a run that scored several models gets one row per model (``label/model``).
    ``ceilings`` maps a label to the oracle's ceiling on its records (official data that lint
    flags), shown as a column and a mark on the plot. Writes ``{stem}.md`` and ``{stem}.png``
    in ``out_dir``.
    """
    ceilings = dict(ceilings or {})
    if metric not in GAP_METRICS:
        raise ValueError(f"compare_runs compares one of {', '.join(GAP_METRICS)}, not {metric!r}")
    rows, row_ceilings = [], {}
    for label, ev in evaluations.items():
        for model in ev.models():
            row = label if len(ev.models()) == 1 else f"{label}/{model}"
            rows.append((row, ev, model))
            if label in ceilings:
                row_ceilings[row] = ceilings[label]
    ceilings = row_ceilings
    if not rows:
        raise ValueError("no runs to compare")
    modalities = unique_in_order(m for _, ev, model in rows for m in ("text", "image", "hybrid")
                         if m in ev.modalities(model))
    names = list(GAP_PAIRS)
    head = "| run | " + " | ".join(MODALITY_LABELS.get(m, m) for m in modalities)
    head += " | " + " | ".join(f"gap {n} (95% CI, p)" for n in names) + " |"
    ceiling_note = (" The oracle's ceiling is the share of the records whose grid has one "
                    "solution, the recorded one (the rest are flagged by lint)."
                    if ceilings else "")
    if ceilings:
        head = head.replace("| run |", "| run | oracle's ceiling |")
    lines = [f"# crossmath: {METRIC_LABELS[metric]} accuracy, style {style}", "",
             "Accuracy in percent (mean ± std over samples); gaps in percentage points, paired "
             f"by puzzle. {_rules_line(evaluations)}{ceiling_note}", "", head,
             "|---|" + "---:|" * (len(modalities) + len(names) + bool(ceilings))]
    for label, ev, model in rows:
        cells = [f"{ceilings[label]:.1f}" if label in ceilings else "–"] if ceilings else []
        cells += [stat_cell(_stat(ev, model, m, style, metric)) for m in modalities]
        for name in names:
            gap = ev.gap(model, name, metric, style)
            cells.append(f"{gap.estimate.gap:+.1f} ({interval(gap.estimate)}, "
                         f"p={_p(gap.estimate.p_value)})" if gap else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown_path = out / f"{stem}.md"
    markdown_path.write_text(markdown, encoding="utf-8")
    plot_path = _plot_comparison(rows, modalities, metric, style, out / f"{stem}.png", ceilings)
    return Comparison(markdown, markdown_path, plot_path)


def _plot_comparison(rows, modalities: list[str], metric: str, style: str, path: Path,
                     ceilings: Mapping[str, float]) -> Path:
    """Runs as rows (labels read horizontally, however long): accuracy per modality on the
    left, with the oracle's ceiling where it is known, each gap with its interval on the
    right. Every series is in a legend, and the legends sit below the panels, off the data."""
    labels = [label for label, _, _ in rows]
    height = 1.8 + 0.32 * len(rows) * max(2, len(modalities))
    figure = new_figure(figsize=(11.0, height), layout="constrained")
    bars, gaps = figure.subplots(1, 2, gridspec_kw={"width_ratios": (3, 2)})
    width = 0.8 / max(1, len(modalities))
    for i, modality in enumerate(modalities):
        stats = [_stat(ev, model, modality, style, metric) for _, ev, model in rows]
        ys = [y + (i - (len(modalities) - 1) / 2) * width for y in range(len(rows))]
        bars.barh(ys, [s.mean if s else math.nan for s in stats], width,
                  xerr=[s.std if s else 0.0 for s in stats], capsize=3,
                  label=MODALITY_LABELS.get(modality, modality), color=_COLORS.get(modality))
    marked = [(y, ceilings[label]) for y, label in enumerate(labels) if label in ceilings]
    if marked:
        bars.scatter([c for _, c in marked], [y for y, _ in marked], marker="|", s=600,
                     color="black", zorder=3, label="oracle's ceiling (lint)")
    bars.set_yticks(range(len(rows)), [textwrap.fill(label, LABEL_WIDTH) for label in labels])
    bars.set_ylim(len(rows) - 0.5, -0.5)  # first run on top
    bars.set_xlim(0, 105)
    bars.set_xlabel(f"{METRIC_LABELS[metric]} accuracy (%)")
    bars.grid(axis="x", alpha=0.3)
    drawn = [name for name in GAP_PAIRS
             if any(ev.gap(model, name, metric, style) for _, ev, model in rows)]
    offsets = {name: (i - (len(drawn) - 1) / 2) * 0.8 / max(1, len(drawn))
               for i, name in enumerate(drawn)}
    for name, offset in offsets.items():
        points = [(y, ev.gap(model, name, metric, style)) for y, (_, ev, model) in enumerate(rows)]
        points = [(y, gap.estimate) for y, gap in points if gap is not None]
        gaps.errorbar([e.gap for _, e in points], [y + offset for y, _ in points],
                      xerr=[[e.gap - e.ci_low for _, e in points],
                            [e.ci_high - e.gap for _, e in points]],
                      fmt="o", capsize=3, color=GAP_COLORS[name], label=name)
    gaps.axvline(0.0, color="grey", linewidth=1, linestyle="--")
    gaps.set_yticks(range(len(rows)), [""] * len(rows))
    gaps.set_ylim(len(rows) - 0.5, -0.5)
    gaps.set_xlabel(f"{METRIC_LABELS[metric]} gap (pp, 95% CI)")
    gaps.grid(axis="x", alpha=0.3)
    for axes in (bars, gaps):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18 * 3.5 / height),
                        ncol=3, fontsize="small", frameon=False)
    figure.suptitle(f"models × modality, {METRIC_LABELS[metric]} accuracy, style {style}")
    return save_figure(figure, path)


# ---------------------------------------------------------------- helpers


def _stat(evaluation: Evaluation, model: str, modality: str, style: str, metric: str) -> MeanStd | None:
    group = evaluation.group(model, modality, style)
    return group.metric(metric) if group else None


def _gap_cell(gap: GapResult) -> str:
    return f"{gap_cell(gap.estimate)}, p={_p(gap.estimate.p_value)}"


def _rules_line(evaluations: Mapping[str, Evaluation]) -> str:
    """Which answer rule the runs used; runs that differ are named, as they do not compare."""
    by_rule: dict[str, list[str]] = {}
    for label, evaluation in evaluations.items():
        by_rule.setdefault(evaluation.answer_rule, []).append(label)
    if len(by_rule) == 1:
        return f"Answers read by {_rule_note(next(iter(evaluations.values())))}."
    groups = "; ".join(f"{rule}: {', '.join(labels)}" for rule, labels in by_rule.items())
    return f"**The runs read answers by different rules, so they do not compare** ({groups})."


def _rule_note(evaluation: Evaluation) -> str:
    return ANSWER_RULE_NOTES.get(evaluation.answer_rule, f"the rule {evaluation.answer_rule!r}")


def _p(value: float) -> str:
    return f"{value:.3g}" if value >= 0.001 else "<0.001"
