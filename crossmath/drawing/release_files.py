"""Write a style's images where the release keeps them: each record's ``img_blank`` (and ``img``).

Paths are taken from the records themselves, relative to the folder of their jsonl, so the
output folder mirrors the release's layout (e.g. ``Original/test_images_blank_hr/...``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from crossmath.drawing.painter import render_puzzle_png
from crossmath.drawing.style import Style
from crossmath.puzzle.model import Puzzle


class ReleasePathError(ValueError):
    """A record whose image path is missing or points outside the output folder."""


def write_release_images(
    puzzles: Iterable[Puzzle],
    records: Iterable[Mapping],
    style: Style,
    root: str | Path,
    *,
    solved: bool = False,
    source: str | None = None,
) -> int:
    """Render each puzzle to its record's ``img_blank`` under ``root``; returns images written.

    ``puzzles`` and ``records`` go in pairs (same order, same length). With ``solved``, the
    solved image (blanks filled from the puzzle's solution) goes to the record's ``img`` too.
    ``source`` (the records' file) is named in errors.
    """
    root = Path(root)
    fields = ("img_blank", "img") if solved else ("img_blank",)
    jobs = []  # every path is checked before the first image is written
    for number, (puzzle, record) in enumerate(zip(puzzles, records, strict=True), start=1):
        for field in fields:
            values = puzzle.solution if field == "img" else None
            path = root / _relative_image_path(record, field, number, source)
            jobs.append((path, puzzle, values))
    for path, puzzle, values in jobs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render_puzzle_png(puzzle.grid, style, values))
    return len(jobs)


def _relative_image_path(record: Mapping, field: str, number: int,
                         source: str | None) -> PurePosixPath:
    """The record's image path, checked to be a relative path that stays inside the root."""
    value = record.get(field)
    where = f"{source + ': ' if source else ''}record {number}, field {field!r}"
    if not isinstance(value, str) or not value:
        raise ReleasePathError(f"{where}: missing image path")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise ReleasePathError(f"{where}: {value!r} must be a relative path inside the "
                               "output folder")
    return path
