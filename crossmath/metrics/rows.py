"""The rows a scorecard reads, checked: gold puzzles, and predictions with their answers read.

Rows are plain dicts, or a pyarrow Table (anything with ``to_pylist()``). A bad row is an
error that names it (``prediction row 3 (puzzle_id='p1'): ...``); a bad model output never is.
A prediction's answer is read again from its ``output`` with the evaluation's answer rule when
the row has one, else taken from its ``pred``; a row whose ``error`` is set has no response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from crossmath.metrics.answers import answer_block, extract_answer

ALL = "all"  # the style that pools a modality's styles; no prediction may carry it
PREDICTION_FIELDS = ("puzzle_id", "model", "modality", "style", "sample")
PUZZLE_FIELDS = ("puzzle_id", "answer", "steps", "difficulty")


@dataclass(frozen=True)
class Gold:
    answer: list[str]
    steps: list[int]
    difficulty: str


@dataclass(frozen=True)
class ReadAnswer:
    """One request's answer as read: the text answers are read from (None: the request got
    no response) and the answer rule's tokens of it."""

    answer_text: str | None
    tokens: list[str] | None


NO_RESPONSE = ReadAnswer(None, None)

# (model, modality, style) -> (puzzle_id, sample) -> the answer
PredictionCells = dict[tuple[str, str, str], dict[tuple[str, int], ReadAnswer]]


def table_rows(table: Any) -> list[Mapping[str, Any]]:
    return table.to_pylist() if hasattr(table, "to_pylist") else list(table)


def read_gold_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Gold]:
    """puzzle_id -> gold, checked; a puzzle listed twice must have the same gold."""
    gold: dict[str, Gold] = {}
    for index, row in enumerate(rows):
        where = f"puzzle row {index} (puzzle_id={row.get('puzzle_id')!r})"
        missing = [name for name in PUZZLE_FIELDS if name not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        entry = Gold([str(t) for t in row["answer"]], [int(s) for s in row["steps"]], str(row["difficulty"]))
        if not entry.answer:
            raise ValueError(f"{where}: empty answer")
        if len(entry.steps) != len(entry.answer):
            raise ValueError(f"{where}: {len(entry.steps)} steps for {len(entry.answer)} answer tokens")
        previous = gold.setdefault(str(row["puzzle_id"]), entry)
        if previous != entry:
            raise ValueError(f"{where}: puzzle_id listed twice with different gold")
    return gold


def read_prediction_rows(
    rows: Sequence[Mapping[str, Any]], gold: Mapping[str, Gold], samples: int | None,
    prepare: Callable[[str], str], answer_rule: str,
) -> PredictionCells:
    """Each row's answer, read with ``prepare`` (the answer rule's step) and checked."""
    cells: PredictionCells = {}
    for index, row in enumerate(rows):
        where = f"prediction row {index} (puzzle_id={row.get('puzzle_id')!r})"
        missing = [name for name in PREDICTION_FIELDS if name not in row]
        if "output" not in row and "pred" not in row:
            missing.append("output or pred")
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        puzzle_id, sample = str(row["puzzle_id"]), int(row["sample"])
        if puzzle_id not in gold:
            raise ValueError(f"{where}: no gold puzzle with this puzzle_id")
        if sample < 0 or (samples is not None and sample >= samples):
            raise ValueError(f"{where}: sample {sample} outside 0..{'k-1' if samples is None else samples - 1}")
        key = (str(row["model"]), str(row["modality"]), str(row["style"]))
        if key[2] == ALL:
            raise ValueError(f"{where}: style {ALL!r} is reserved for the styles pooled")
        cell = cells.setdefault(key, {})
        if (puzzle_id, sample) in cell:
            raise ValueError(f"{where}: second prediction for model/modality/style {'/'.join(key)}, sample {sample}")
        cell[puzzle_id, sample] = _read_answer(row, where, prepare, answer_rule)
    return cells


def _read_answer(row: Mapping[str, Any], where: str, prepare: Callable[[str], str],
                 answer_rule: str) -> ReadAnswer:
    """A row's answer: read again from its ``output`` if it has one, else its ``pred``."""
    if row.get("error") is not None:
        return NO_RESPONSE
    if "output" in row:
        output = row["output"] or ""
        if not isinstance(output, str):
            raise ValueError(f"{where}: output must be text or None, got {type(output).__name__}")
        text = prepare(output)
        return ReadAnswer(text, extract_answer(text))
    if answer_rule != "release":
        raise ValueError(f"{where}: answer rule {answer_rule!r} reads outputs; this row has only pred")
    pred = row["pred"]
    if pred is None:
        return ReadAnswer("", None)
    if isinstance(pred, (str, bytes)) or not isinstance(pred, (Sequence, np.ndarray)):
        raise ValueError(f"{where}: pred must be a list of tokens or None, got {type(pred).__name__}")
    tokens = [str(token) for token in pred]
    # The lenient reading works on text: the tokens as the one block the primary rule gives back.
    return ReadAnswer(answer_block(tokens), tokens)
