"""CrossMath's predictions as rows a person can browse (``crossmath.tasks.prediction_table``).

Rows go puzzle by puzzle, the requests shown an image first (MLflow's table view takes a
column for an image column when its first row holds an image), then by modality, style and
sample. A puzzle request is scored as the scorecard scores it (the release's rule, exact
answers); a transcription is right when it reads the grid back exactly.

The images are the ones the model was shown: the release's own file, or the style's rendering
of the grid as the unit carried it, drawn as the render stage draws it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from crossmath.drawing import Style, render_puzzle_png
from crossmath.metrics.answers import answer_text_for_rule
from crossmath.metrics.diagnostics import check_answer
from crossmath.metrics.probe import score_transcription
from crossmath.metrics.rows import read_gold_rows, read_prediction_rows
from crossmath.metrics.transcription import TRANSCRIBE, read_transcription
from crossmath.puzzle.grid import parse_markdown_grid
from crossmath.puzzle.table import puzzles_to_table
from crossmath.tasks.crossmath.sources import PuzzleSet
from crossmath.tasks.prediction_table import PredictionTable, table_row

IMAGE_MODALITIES = frozenset({"image", "hybrid", TRANSCRIBE})
ANSWER_RULE = "release"  # what the scorecard reads answers with (evaluate_predictions' default)
_UNSAFE_NAME = re.compile(r"[^\w.-]")


def puzzle_prediction_table(predictions: pa.Table, puzzle_set: PuzzleSet,
                            styles: Mapping[str, Style], with_images: bool = True
                            ) -> PredictionTable:
    """The rows of CrossMath predictions (every round, the probe's included), scored as the
    scorecard scores them; with their images unless ``with_images`` is False, the rendered ones
    drawn in ``styles`` (each style as the run gave it -> its ``Style``)."""
    puzzles = {puzzle.puzzle_id: puzzle for puzzle in puzzle_set.puzzles}
    rows = sorted(predictions.to_pylist(), key=lambda row: (
        puzzles[row["puzzle_id"]].name or row["puzzle_id"],
        row["modality"] not in IMAGE_MODALITIES, row["modality"], row["style"], row["sample"],
        row["request_id"]))
    solved = _answer_checks([row for row in rows if row["modality"] != TRANSCRIBE], puzzle_set)
    image_of = _ImageFiles(puzzle_set, styles) if with_images else None
    table = []
    for row in rows:
        puzzle = puzzles[row["puzzle_id"]]
        if row["modality"] == TRANSCRIBE:
            read = None if row["error"] is not None else read_transcription(row["output"] or "")
            correct = read is not None and score_transcription(read, puzzle.grid).exact
            answer, gold = (read.fed_back() if read is not None else None), puzzle.grid.to_markdown()
        else:
            tokens, correct = solved[row["model"], row["modality"], row["style"],
                                     row["puzzle_id"], row["sample"]]
            answer = None if tokens is None else ", ".join(tokens)
            gold = ", ".join(puzzle.answer)
        image = (image_of(puzzle, row["style"])
                 if image_of is not None and row["modality"] in IMAGE_MODALITIES else None)
        table.append(table_row(row, puzzle=puzzle.name or puzzle.puzzle_id, correct=correct,
                               answer=answer, gold=gold, image=image))
    return PredictionTable(table, image_of.files if image_of is not None else {})


def _answer_checks(rows: list[dict[str, Any]], puzzle_set: PuzzleSet
                   ) -> dict[tuple, tuple[list[str] | None, bool]]:
    """(model, modality, style, puzzle_id, sample) -> the answer's tokens as read, and whether
    the answer is exactly right (macro accuracy's rule)."""
    gold = read_gold_rows(puzzles_to_table(puzzle_set.puzzles).to_pylist())
    cells = read_prediction_rows(rows, gold, None, answer_text_for_rule(ANSWER_RULE), ANSWER_RULE)
    checks = {}
    for (model, modality, style), answers in cells.items():
        for (puzzle_id, sample), read in answers.items():
            check = check_answer(read.answer_text, read.tokens, gold[puzzle_id].answer,
                                 gold[puzzle_id].steps)
            checks[model, modality, style, puzzle_id, sample] = (read.tokens, check.score.exact)
    return checks


class _ImageFiles:
    """The PNG of each (puzzle, style) a row shows, made once: the release's file, or the
    rendering of the grid as the unit carried it (``requests.RequestPlan.units``)."""

    def __init__(self, puzzle_set: PuzzleSet, styles: Mapping[str, Style]) -> None:
        self.release_images = puzzle_set.official_images
        self.styles = styles
        self.files: dict[str, bytes] = {}

    def __call__(self, puzzle, style: str) -> str:
        name = _UNSAFE_NAME.sub("_", f"{puzzle.puzzle_id}-{style}")
        if name not in self.files:
            release_image = self.release_images.get((puzzle.name, style))
            self.files[name] = (Path(release_image).read_bytes() if release_image is not None
                                else self._render(puzzle, style))
        return name

    def _render(self, puzzle, style: str) -> bytes:
        grid = parse_markdown_grid(puzzle.grid.to_markdown(as_written=True))
        return render_puzzle_png(grid, self.styles[style])
