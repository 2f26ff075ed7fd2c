"""Score a prediction table against gold puzzles: accuracies, format diagnostics, modality gaps.

Inputs are rows as plain dicts, or a pyarrow Table (anything with ``to_pylist()``), read and
checked by :mod:`crossmath.metrics.rows`:

- predictions: ``puzzle_id``, ``model``, ``modality`` (text|image|hybrid), ``style``,
  ``sample`` (0..k-1), and ``output`` (the model's text) or ``pred`` (its tokens, or None for
  no answer) or both; ``error`` (optional: set when the request failed);
- puzzles (gold): ``puzzle_id``, ``answer`` (list of tokens), ``steps`` (one wave per token),
  ``difficulty``.

A row with an ``output`` is read again here with the evaluation's answer rule (the release's,
:func:`~crossmath.metrics.answers.extract_answer`, unless ``answer_rule`` names another), and
its ``pred`` is not used: every answer of an evaluation is read by one rule, whatever rule was
current when its prediction was stored. A row without ``output`` is scored on its ``pred``. A
row whose ``error`` is set is no answer, whatever its text.

Rows are joined on ``puzzle_id``, never on position. Every gold puzzle counts in every
(model, modality, style) group that has predictions, so a missing prediction is a wrong one
(and a failed request in the diagnostics). Puzzles are taken in ``puzzle_id`` order, so the
same rows in any order give the same numbers (bootstrap included).

Style ``all`` pools a modality's styles: each (puzzle, style) pair is one item of a run, and
the group still counts its puzzles once. The gaps T−TI (text − hybrid) and T−I (text − image),
and with the perception probe T−T̂ and T̂−I (``transcribed``: the model's own transcription
solved as text), are computed per style and over all styles, on macro, micro and lenient macro
accuracy; when one side was run in a single style (text) it is paired with every style of the
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from crossmath.metrics.accuracy import MeanStd, RunAccuracy, run_accuracy
from crossmath.metrics.answers import answer_text_for_rule
from crossmath.metrics.diagnostics import (
    DIAGNOSTIC_NAMES,
    AnswerCheck,
    RunFormat,
    check_answer,
    run_format,
)
from crossmath.metrics.gaps import GapEstimate, paired_gap
from crossmath.metrics.rows import (
    ALL,
    NO_RESPONSE,
    Gold,
    read_gold_rows,
    read_prediction_rows,
    table_rows,
)
from crossmath.metrics.transcription import TRANSCRIBED
from crossmath.puzzle.model import DIFFICULTIES

# The modality gaps, and the perception probe's split of T−I into T−T̂ and T̂−I (T̂: the
# model's own transcription of the image, solved as text; crossmath.metrics.probe).
GAP_PAIRS: dict[str, tuple[str, str]] = {"T-TI": ("text", "hybrid"), "T-I": ("text", "image"),
                                         "T-That": ("text", TRANSCRIBED),
                                         "That-I": (TRANSCRIBED, "image")}
# Each gap metric's per-request value, averaged per puzzle before pairing.
_GAP_VALUES: dict[str, Callable[[AnswerCheck], float]] = {
    "macro_acc": lambda check: float(check.score.exact),
    "micro_acc": lambda check: check.score.micro,
    "lenient_macro_acc": lambda check: float(check.lenient.exact),
}
GAP_METRICS: tuple[str, ...] = tuple(_GAP_VALUES)
MODALITY_ORDER = ("text", "image", "hybrid", TRANSCRIBED)
STYLE_ORDER = ("original", "noborder", "beige", "altstyle")
STEP_METRIC_NAMES = {"step1": "step1_acc", "step2": "step2_acc", "step3": "step3_acc",
                     "step4+": "step4plus_acc"}  # MLflow metric names may not contain "+"
# What metrics.json files written before answer rules were named were read by.
_LEGACY_ANSWER_RULE = "after_thinking"


@dataclass(frozen=True)
class GroupMetrics:
    """Accuracy and format diagnostics of one (model, modality, style, difficulty) over its k
    sampled runs. ``n_styles`` is the number of styles pooled (1 unless the style is ``all``);
    ``formats`` is empty for evaluations saved before diagnostics existed."""

    model: str
    modality: str
    style: str
    difficulty: str
    n_styles: int
    runs: tuple[RunAccuracy, ...]
    formats: tuple[RunFormat, ...]

    @property
    def n_puzzles(self) -> int:
        """Distinct puzzles: a run of a pooled group scores each puzzle once per style."""
        return self.runs[0].n_items // self.n_styles

    @property
    def n_samples(self) -> int:
        return len(self.runs)

    @property
    def macro(self) -> MeanStd:
        return MeanStd.of([run.macro for run in self.runs])

    @property
    def micro(self) -> MeanStd:
        return MeanStd.of([run.micro for run in self.runs])

    @property
    def answer_rate(self) -> MeanStd:
        return MeanStd.of([run.answer_rate for run in self.runs])

    def step(self, group: str) -> MeanStd | None:
        """Step-wise accuracy, or None where the puzzles have no blank of that depth."""
        return defined_mean_std([run.step_rate(group) for run in self.runs])

    def summary(self) -> dict[str, MeanStd]:
        """Every defined accuracy by its name (``macro_acc``, ``step4plus_acc``, ...)."""
        values = {"macro_acc": self.macro, "micro_acc": self.micro}
        for group, name in STEP_METRIC_NAMES.items():
            stat = self.step(group)
            if stat is not None:
                values[name] = stat
        values["answer_rate"] = self.answer_rate
        return values

    def diagnostics(self) -> dict[str, MeanStd]:
        """Every format diagnostic defined in all runs, by its name (``answer_tag_rate``, ...)."""
        if not self.formats:
            return {}
        rates = [run.rates() for run in self.formats]
        values = {name: defined_mean_std([r[name] for r in rates]) for name in DIAGNOSTIC_NAMES}
        return {name: stat for name, stat in values.items() if stat is not None}

    def metric(self, name: str) -> MeanStd | None:
        """An accuracy or a diagnostic by name; None where it is undefined or was not computed."""
        return self.summary().get(name) or self.diagnostics().get(name)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "modality": self.modality, "style": self.style,
            "difficulty": self.difficulty, "n_puzzles": self.n_puzzles, "n_styles": self.n_styles,
            "metrics": {name: stat.to_dict() for name, stat in self.summary().items()},
            "diagnostics": {name: stat.to_dict() for name, stat in self.diagnostics().items()},
            "runs": [run.to_dict() for run in self.runs],
            "formats": [run.to_dict() for run in self.formats],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_styles: int | None = None) -> "GroupMetrics":
        """``n_styles`` is needed only for dicts saved before it was recorded."""
        if "n_styles" in data:
            n_styles = int(data["n_styles"])
        elif n_styles is None:
            raise ValueError(f"group {data['model']}/{data['modality']}/{data['style']} was saved "
                             "without n_styles: read it through Evaluation.from_dict")
        return cls(data["model"], data["modality"], data["style"], data["difficulty"], n_styles,
                   tuple(RunAccuracy.from_dict(run) for run in data["runs"]),
                   tuple(RunFormat.from_dict(run) for run in data.get("formats", ())))


def defined_mean_std(fractions: Sequence[float | None]) -> MeanStd | None:
    """Mean ± std over the runs, or None when some run leaves the value undefined."""
    if any(value is None for value in fractions):
        return None
    return MeanStd.of(fractions)


@dataclass(frozen=True)
class GapResult:
    """A modality gap of one model, e.g. T−TI on macro accuracy, in percentage points."""

    model: str
    name: str
    metric: str
    style: str
    estimate: GapEstimate

    def to_dict(self) -> dict:
        e = self.estimate
        return {"model": self.model, "name": self.name, "metric": self.metric,
                "style": self.style, "gap": e.gap, "ci_low": e.ci_low, "ci_high": e.ci_high,
                "p_value": e.p_value, "n_puzzles": e.n_puzzles, "confidence": e.confidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GapResult":
        estimate = GapEstimate(float(data["gap"]), float(data["ci_low"]), float(data["ci_high"]),
                               float(data["p_value"]), int(data["n_puzzles"]),
                               float(data["confidence"]))
        return cls(data["model"], data["name"], data["metric"], data["style"], estimate)


@dataclass(frozen=True)
class Evaluation:
    """All metrics of a prediction table; JSON round-trips through ``to_dict``/``from_dict``.

    ``answer_rule`` names how answers were read from outputs (see
    :data:`~crossmath.metrics.answers.ANSWER_RULES`): part of what the numbers mean.
    """

    groups: tuple[GroupMetrics, ...]
    gaps: tuple[GapResult, ...]
    answer_rule: str = "release"

    def models(self) -> list[str]:
        return unique_in_order(group.model for group in self.groups)

    def modalities(self, model: str) -> list[str]:
        return unique_in_order(g.modality for g in self.groups if g.model == model)

    def styles(self, model: str, modality: str) -> list[str]:
        """The styles of a modality, ``all`` last."""
        return unique_in_order(g.style for g in self.groups if g.model == model and g.modality == modality)

    def difficulties(self, model: str) -> list[str]:
        return unique_in_order(g.difficulty for g in self.groups if g.model == model)

    def group(self, model: str, modality: str, style: str = ALL, difficulty: str = ALL) -> GroupMetrics | None:
        for group in self.groups:
            if (group.model, group.modality, group.style, group.difficulty) == (model, modality, style, difficulty):
                return group
        return None

    def gap(self, model: str, name: str, metric: str, style: str = ALL) -> GapResult | None:
        for gap in self.gaps:
            if (gap.model, gap.name, gap.metric, gap.style) == (model, name, metric, style):
                return gap
        return None

    def only_model(self, model: str | None = None) -> str:
        """``model`` if given, else the single model scored; ambiguity is an error."""
        models = self.models()
        if model is not None:
            if model not in models:
                raise KeyError(f"model {model!r} not in this evaluation (has {models})")
            return model
        if len(models) != 1:
            raise ValueError(f"name a model: this evaluation holds {models}")
        return models[0]

    def flat_metrics(self, model: str | None = None) -> dict[str, float]:
        """Metric name -> value for MLflow, for one model (the only one if not named).

        ``text/original/macro_acc`` (+ ``_std``) over all difficulties,
        ``text/original/easy/micro_acc`` per difficulty, ``image/all/...`` pooled over styles,
        ``gap/T-TI/macro_acc`` (+ ``_ci_low``, ``_ci_high``, ``_p_value``) pooled over
        styles and ``gap/T-TI/beige/macro_acc`` per style. The format diagnostics sit beside
        the accuracies (``image/original/answer_tag_rate``, ``.../lenient_macro_acc``,
        ``.../error_rate``). Values in percent.
        """
        model = self.only_model(model)
        flat: dict[str, float] = {}
        for group in self.groups:
            if group.model != model:
                continue
            prefix = f"{group.modality}/{group.style}"
            if group.difficulty != ALL:
                prefix += f"/{group.difficulty}"
            for name, stat in {**group.summary(), **group.diagnostics()}.items():
                flat[f"{prefix}/{name}"] = stat.mean
                flat[f"{prefix}/{name}_std"] = stat.std
        for gap in self.gaps:
            if gap.model != model:
                continue
            prefix = f"gap/{gap.name}" + ("" if gap.style == ALL else f"/{gap.style}")
            e = gap.estimate
            flat[f"{prefix}/{gap.metric}"] = e.gap
            flat[f"{prefix}/{gap.metric}_ci_low"] = e.ci_low
            flat[f"{prefix}/{gap.metric}_ci_high"] = e.ci_high
            flat[f"{prefix}/{gap.metric}_p_value"] = e.p_value
        return flat

    def to_dict(self) -> dict:
        return {"answer_rule": self.answer_rule, "groups": [g.to_dict() for g in self.groups],
                "gaps": [g.to_dict() for g in self.gaps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Evaluation":
        """Also reads files saved by earlier versions: their answers were read after the
        thinking, and their groups did not record how many styles they pool."""
        styles: dict[tuple[str, str], set[str]] = {}
        for g in data["groups"]:
            if g["style"] != ALL:
                styles.setdefault((g["model"], g["modality"]), set()).add(g["style"])
        groups = tuple(
            GroupMetrics.from_dict(g, len(styles.get((g["model"], g["modality"]), ())) if g["style"] == ALL else 1)
            for g in data["groups"])
        return cls(groups, tuple(GapResult.from_dict(g) for g in data["gaps"]),
                   data.get("answer_rule", _LEGACY_ANSWER_RULE))


# (model, modality, style) -> puzzle_id -> one check per sample index
_Cells = dict[tuple[str, str, str], dict[str, list[AnswerCheck]]]


def evaluate_predictions(
    predictions: Any,
    puzzles: Any,
    *,
    samples: int | None = None,
    answer_rule: str = "release",
    seed: int = 0,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
) -> Evaluation:
    """Score predictions against gold puzzles (see the module docstring for the columns).

    ``samples`` is k, the number of sampled answers per request; by default the sample
    indices seen in the predictions. A (puzzle, sample) without a prediction is wrong.
    ``answer_rule`` is ``release`` (the primary score) or ``after_thinking``.
    """
    gold = read_gold_rows(table_rows(puzzles))
    predicted = read_prediction_rows(table_rows(predictions), gold, samples,
                                     answer_text_for_rule(answer_rule), answer_rule)
    if samples is None:
        samples = 1 + max((sample for cell in predicted.values() for (_, sample) in cell), default=-1)
    puzzle_ids = sorted(gold)
    cells: _Cells = {}
    for key, preds in sorted(predicted.items(), key=lambda item: _cell_order(item[0])):
        cells[key] = {}
        for pid in puzzle_ids:
            answers = [preds.get((pid, s), NO_RESPONSE) for s in range(samples)]
            cells[key][pid] = [check_answer(a.answer_text, a.tokens, gold[pid].answer, gold[pid].steps)
                               for a in answers]
    groups = _group_metrics(cells, gold, puzzle_ids, samples)
    gaps = _gaps(cells, puzzle_ids, seed=seed, n_resamples=n_resamples, confidence=confidence)
    return Evaluation(tuple(groups), tuple(gaps), answer_rule)


def _group_metrics(cells: _Cells, gold: dict[str, Gold], puzzle_ids: list[str], samples: int) -> list[GroupMetrics]:
    if samples == 0:
        return []
    present = {gold[pid].difficulty for pid in puzzle_ids}
    difficulties = [d for d in DIFFICULTIES if d in present] + sorted(present - set(DIFFICULTIES))
    subsets = {d: [pid for pid in puzzle_ids if gold[pid].difficulty == d] for d in difficulties}
    subsets[ALL] = puzzle_ids
    groups = []
    for (model, modality) in unique_in_order((m, mod) for (m, mod, _) in cells):
        styles = [style for (m, mod, style) in cells if (m, mod) == (model, modality)]
        for style in [*styles, ALL]:
            pooled = styles if style == ALL else [style]
            for difficulty, subset in subsets.items():
                checks = [[cells[model, modality, s][pid][sample] for s in pooled for pid in subset]
                          for sample in range(samples)]
                groups.append(GroupMetrics(
                    model, modality, style, difficulty, len(pooled),
                    runs=tuple(run_accuracy(check.score for check in run) for run in checks),
                    formats=tuple(run_format(run) for run in checks)))
    return groups


def _gaps(cells: _Cells, puzzle_ids: list[str], **stats) -> list[GapResult]:
    results = []
    models = unique_in_order(model for (model, _, _) in cells)
    for model in models:
        styles_of = {}
        for (m, modality, style) in cells:
            if m == model:
                styles_of.setdefault(modality, []).append(style)
        for name, (first, second) in GAP_PAIRS.items():
            if first not in styles_of or second not in styles_of:
                continue
            pairs = [(_matching_style(style, styles_of[first]), style) for style in styles_of[second]]
            pairs = [(a, b) for a, b in pairs if a is not None]
            for metric in GAP_METRICS:
                for a_style, b_style in pairs:
                    estimate = paired_gap(
                        _per_puzzle(cells, model, first, [a_style], puzzle_ids, metric),
                        _per_puzzle(cells, model, second, [b_style], puzzle_ids, metric), **stats)
                    results.append(GapResult(model, name, metric, b_style, estimate))
                estimate = paired_gap(
                    _per_puzzle(cells, model, first, styles_of[first], puzzle_ids, metric),
                    _per_puzzle(cells, model, second, styles_of[second], puzzle_ids, metric), **stats)
                results.append(GapResult(model, name, metric, ALL, estimate))
    return results


def _matching_style(style: str, candidates: list[str]) -> str | None:
    if style in candidates:
        return style
    return candidates[0] if len(candidates) == 1 else None


def _per_puzzle(cells: _Cells, model: str, modality: str, styles: list[str],
                puzzle_ids: list[str], metric: str) -> np.ndarray:
    """Each puzzle's score in percent, averaged over the styles and samples."""
    value = _GAP_VALUES[metric]
    return np.array([
        100.0 * np.mean([value(check) for style in styles for check in cells[model, modality, style][pid]])
        for pid in puzzle_ids
    ])


def _cell_order(key: tuple[str, str, str]) -> tuple:
    """Models by name, modalities T, I, TI, the release's styles in its order, then the rest."""
    model, modality, style = key
    return model, order_rank(modality, MODALITY_ORDER), order_rank(style, STYLE_ORDER)


def order_rank(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    """A sort key: the values of ``order`` in its order, then any other value by name."""
    return (order.index(value), "") if value in order else (len(order), value)


def unique_in_order(items: Iterable) -> list:
    """The distinct items, in the order they first appear."""
    return list(dict.fromkeys(items))
