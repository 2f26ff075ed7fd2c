"""Every prediction of an evaluation as one table row a person can browse: what was asked, what
the model answered, what was read from it, and whether it was right.

The table is what MLflow shows in a run's artifacts and the experiment's "Artifact evaluation"
view (``tracking.evaluation_table``). Columns, the same for every task:

``puzzle`` (a puzzle's name, a transfer task's item id), ``modality``, ``style``, ``sample``,
``image`` (for a request shown an image: its key in ``images``, the PNG bytes, one per puzzle
and style whichever rows show it; else None), ``correct``, ``answer`` (as read by the
evaluation's rule; for a transcription, the grid as read), ``gold``, ``output`` (the model's
reply; only its last ``OUTPUT_CHARS`` characters, where the answer is, so that long thinking
does not make the table huge: ``predictions.parquet`` has it whole) and ``error`` (why a
failed request failed). A failed request is wrong.

Each task fills the rows its own way (``crossmath.tasks.crossmath.prediction_table``: puzzles,
with their images; ``judged_prediction_table``: a transfer task's replies, judged by its rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

COLUMNS = ("puzzle", "modality", "style", "sample", "image", "correct", "answer", "gold",
           "output", "error")
OUTPUT_CHARS = 4000


@dataclass(frozen=True)
class PredictionTable:
    """Rows (``COLUMNS``) and the PNG bytes their ``image`` cells name."""

    rows: list[dict[str, Any]]
    images: dict[str, bytes] = field(default_factory=dict)


def output_tail(output: str | None) -> str | None:
    if output is None or len(output) <= OUTPUT_CHARS:
        return output
    return "…" + output[-OUTPUT_CHARS:]


def table_row(prediction: Mapping[str, Any], *, puzzle: str, correct: bool, answer: str | None,
              gold: str, image: str | None = None) -> dict[str, Any]:
    return {"puzzle": puzzle, "modality": prediction["modality"], "style": prediction["style"],
            "sample": prediction["sample"], "image": image, "correct": correct,
            "answer": answer, "gold": gold, "output": output_tail(prediction["output"]),
            "error": prediction["error"]}


def judged_prediction_table(
        judged: Iterable[tuple[Mapping[str, Any], str | None, bool, str]]) -> PredictionTable:
    """The rows of predictions judged elsewhere (a transfer task's): each prediction with the
    answer read from it, whether it was right and the gold answer; no images."""
    entries = sorted(judged, key=lambda entry: (entry[0]["puzzle_id"], entry[0]["sample"],
                                                entry[0]["request_id"]))
    return PredictionTable([table_row(row, puzzle=row["puzzle_id"], correct=correct,
                                      answer=answer, gold=gold)
                            for row, answer, correct, gold in entries])
