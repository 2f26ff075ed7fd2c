"""The perception probe's scores: how well a model reads the grid, and what that explains.

**Reading.** Each transcription (``transcription``) is laid over the true grid from its
top-left corner, and every cell of the true grid is compared with the transcribed cell at the
same place (a cell the table lacks is wrong). Cells fall in five classes: numbers, operators,
``=``, blanks (``?``) and empty (non-puzzle) cells. Per transcription:

- ``cell_acc``: share of the grid's cells transcribed right; ``<class>_cell_acc`` the same
  within one class (undefined for a grid without that class);
- ``exact_rate``: the whole grid right (shape and every cell);
- ``shape_error_rate``: a table with another number of rows than the grid
  (``row_error_rate``) or a row with another number of cells (``column_error_rate``), reported
  apart from the cell accuracies, which still count the cells that line up;
- ``table_rate``: a reply that holds a table at all (a failed request holds none).

Rates are averaged over puzzles per sample index (as micro accuracy is), then reported as
mean ± sample std over the samples, in percent; style ``all`` pools the styles, each
(puzzle, style) one item.

**What it explains.** T is the text modality on the true grid, T̂ the model's own
transcription solved as text (modality ``transcribed``), I the image. Per puzzle,
T − I = (T − T̂) + (T̂ − I): reading errors, and the rest (reasoning over the image beyond
reading it). The scorecard computes the three gaps with paired bootstrap intervals
(``GAP_PAIRS``); ``decompose`` puts them side by side with the share of T − I that reading
explains, which is undefined when T − I is 0 and may fall outside [0, 1] (T̂ above T, or below
I).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from crossmath.metrics.accuracy import MeanStd
from crossmath.metrics.gaps import GapEstimate
from crossmath.metrics.rows import ALL, table_rows
from crossmath.metrics.scorecard import (
    STYLE_ORDER,
    Evaluation,
    defined_mean_std,
    order_rank,
    unique_in_order,
)
from crossmath.metrics.transcription import Transcription, read_transcription
from crossmath.puzzle.grid import BLANK, EMPTY, EQUALS, OPERATORS, Grid, is_number_token

CELL_CLASSES: tuple[str, ...] = ("number", "operator", "equals", "blank", "empty")
PROBE_METRICS: tuple[str, ...] = (
    "cell_acc", *(f"{name}_cell_acc" for name in CELL_CLASSES), "exact_rate",
    "shape_error_rate", "row_error_rate", "column_error_rate", "table_rate")
# The decomposition's parts, by the names of the scorecard's gaps.
TOTAL_GAP, READING_GAP, REST_GAP = "T-I", "T-That", "That-I"


def cell_class(token: str) -> str:
    """The class of one canonical cell token of a true grid."""
    if token == EMPTY:
        return "empty"
    if token == BLANK:
        return "blank"
    if token == EQUALS:
        return "equals"
    if token in OPERATORS:
        return "operator"
    if is_number_token(token):
        return "number"
    raise ValueError(f"not a canonical grid token: {token!r}")


@dataclass(frozen=True)
class CellScore:
    """One transcription against its true grid: cells right and cells in each class."""

    found: bool
    rows_ok: bool
    columns_ok: bool
    correct: Mapping[str, int]
    total: Mapping[str, int]

    @property
    def shape_ok(self) -> bool:
        return self.rows_ok and self.columns_ok

    @property
    def exact(self) -> bool:
        return self.shape_ok and sum(self.correct.values()) == sum(self.total.values())

    def accuracy(self, cell_class: str | None = None) -> float | None:
        """Share of the grid's cells (of one class) transcribed right; None for a class the
        grid does not have."""
        if cell_class is None:
            return sum(self.correct.values()) / sum(self.total.values())
        total = self.total.get(cell_class, 0)
        return self.correct.get(cell_class, 0) / total if total else None


def score_transcription(transcription: Transcription, truth: Grid) -> CellScore:
    """Compare every cell of ``truth`` with the transcribed cell at the same place."""
    rows = transcription.rows
    correct = dict.fromkeys(CELL_CLASSES, 0)
    total = dict.fromkeys(CELL_CLASSES, 0)
    for r, c in truth.positions():
        token = truth[r, c]
        kind = cell_class(token)
        total[kind] += 1
        correct[kind] += r < len(rows) and c < len(rows[r]) and rows[r][c] == token
    return CellScore(found=transcription.found, rows_ok=len(rows) == truth.n_rows,
                     columns_ok=bool(rows) and all(len(row) == truth.n_cols for row in rows),
                     correct={k: v for k, v in correct.items() if total[k]},
                     total={k: v for k, v in total.items() if v})


def run_rates(scores: Sequence[CellScore]) -> dict[str, float | None]:
    """The probe's rates (fractions) over one sample index's transcriptions."""
    if not scores:
        raise ValueError("cannot rate a run without transcriptions")
    rates: dict[str, float | None] = {"cell_acc": _mean([s.accuracy() for s in scores])}
    for kind in CELL_CLASSES:
        rates[f"{kind}_cell_acc"] = _mean([s.accuracy(kind) for s in scores])
    rates["exact_rate"] = _mean([s.exact for s in scores])
    rates["shape_error_rate"] = _mean([not s.shape_ok for s in scores])
    rates["row_error_rate"] = _mean([not s.rows_ok for s in scores])
    rates["column_error_rate"] = _mean([not s.columns_ok for s in scores])
    rates["table_rate"] = _mean([s.found for s in scores])
    return rates


def _mean(values: Iterable[float | bool | None]) -> float | None:
    defined = [float(v) for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


@dataclass(frozen=True)
class ProbeGroup:
    """The probe's rates of one (model, style) over its k samples (``runs``: one dict each)."""

    model: str
    style: str
    n_puzzles: int
    runs: tuple[Mapping[str, float | None], ...]

    def metric(self, name: str) -> MeanStd | None:
        """Mean ± std in percent over the samples; None where some sample leaves it undefined."""
        return defined_mean_std([run.get(name) for run in self.runs])

    def summary(self) -> dict[str, MeanStd]:
        values = {name: self.metric(name) for name in PROBE_METRICS}
        return {name: stat for name, stat in values.items() if stat is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "style": self.style, "n_puzzles": self.n_puzzles,
                "metrics": {name: stat.to_dict() for name, stat in self.summary().items()},
                "runs": [dict(run) for run in self.runs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProbeGroup":
        return cls(data["model"], data["style"], int(data["n_puzzles"]),
                   tuple(dict(run) for run in data["runs"]))


@dataclass(frozen=True)
class ProbeSummary:
    """Every (model, style) group of the probe, ``all`` pooling a model's styles."""

    groups: tuple[ProbeGroup, ...]

    def group(self, model: str, style: str = ALL) -> ProbeGroup | None:
        return next((g for g in self.groups if (g.model, g.style) == (model, style)), None)

    def styles(self, model: str) -> list[str]:
        return [g.style for g in self.groups if g.model == model]

    def flat_metrics(self, model: str) -> dict[str, float]:
        """``probe/<style>/<rate>`` (+ ``_std``) in percent, for MLflow."""
        flat: dict[str, float] = {}
        for group in self.groups:
            if group.model == model:
                for name, stat in group.summary().items():
                    flat[f"probe/{group.style}/{name}"] = stat.mean
                    flat[f"probe/{group.style}/{name}_std"] = stat.std
        return flat

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [group.to_dict() for group in self.groups]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProbeSummary":
        return cls(tuple(ProbeGroup.from_dict(group) for group in data["groups"]))


def score_probe(predictions: Any, grids: Mapping[str, Grid], samples: int) -> ProbeSummary:
    """Score the transcription predictions (rows with ``puzzle_id``, ``model``, ``style``,
    ``sample``, ``output``, ``error``) against the true grids, by puzzle id.

    Every puzzle counts in every (model, style) that has transcriptions: a (puzzle, sample)
    without one, or whose request failed, is a reply without a table.
    """
    read: dict[tuple[str, str], dict[tuple[str, int], Transcription]] = {}
    for index, row in enumerate(table_rows(predictions)):
        puzzle_id, sample = str(row["puzzle_id"]), int(row["sample"])
        where = f"transcription row {index} (puzzle_id={puzzle_id!r})"
        if puzzle_id not in grids:
            raise ValueError(f"{where}: no true grid with this puzzle_id")
        if not 0 <= sample < samples:
            raise ValueError(f"{where}: sample {sample} outside 0..{samples - 1}")
        output = "" if row.get("error") is not None else (row.get("output") or "")
        read.setdefault((str(row["model"]), str(row["style"])), {})[
            puzzle_id, sample] = read_transcription(output)
    nothing = Transcription(())
    puzzle_ids = sorted(grids)
    groups = []
    for model in unique_in_order(model for model, _ in read):
        styles = sorted((style for m, style in read if m == model),
                        key=lambda style: order_rank(style, STYLE_ORDER))
        scores = {style: [[score_transcription(read[model, style].get((pid, s), nothing),
                                               grids[pid]) for pid in puzzle_ids]
                          for s in range(samples)]
                  for style in styles}
        for style in styles:
            groups.append(ProbeGroup(model, style, len(puzzle_ids),
                                     tuple(run_rates(run) for run in scores[style])))
        pooled = [[score for style in styles for score in scores[style][s]] for s in range(samples)]
        groups.append(ProbeGroup(model, ALL, len(puzzle_ids),
                                 tuple(run_rates(run) for run in pooled)))
    return ProbeSummary(tuple(groups))


@dataclass(frozen=True)
class Decomposition:
    """T − I split into reading (T − T̂) and the rest (T̂ − I), for one model and style, in
    percentage points of one metric."""

    model: str
    style: str
    metric: str
    total: GapEstimate
    reading: GapEstimate
    rest: GapEstimate

    @property
    def reading_share(self) -> float | None:
        """The share of T − I that reading explains; None when T − I is 0."""
        return self.reading.gap / self.total.gap if self.total.gap else None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "style": self.style, "metric": self.metric,
                "total": self.total.gap, "reading": self.reading.gap, "rest": self.rest.gap,
                "reading_share": self.reading_share}


def decompose(evaluation: Evaluation, model: str,
              metric: str = "macro_acc") -> list[Decomposition]:
    """One decomposition per style where the evaluation has all three gaps, ``all`` last."""
    found = []
    styles = unique_in_order(g.style for g in evaluation.gaps
                             if g.model == model and g.name == REST_GAP and g.metric == metric)
    for style in styles:
        gaps = [evaluation.gap(model, name, metric, style)
                for name in (TOTAL_GAP, READING_GAP, REST_GAP)]
        if all(gaps):
            found.append(Decomposition(model, style, metric,
                                       *(gap.estimate for gap in gaps)))  # type: ignore[union-attr]
    return found


def decomposition_metrics(evaluation: Evaluation, model: str) -> dict[str, float]:
    """``probe/<style>/reading_share`` of macro accuracy, where defined, for MLflow."""
    return {f"probe/{d.style}/reading_share": d.reading_share
            for d in decompose(evaluation, model) if d.reading_share is not None}
