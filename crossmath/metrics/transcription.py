"""Reading a grid a model wrote back: the table in a transcription reply, cell by cell.

The perception probe asks a model to copy the puzzle image as a markdown table inside
``<answer>…</answer>``. A reply is read the way a person would read it, and never raises:

1. where: the last complete ``<answer>`` block (the release's rule for answers), else the
   whole reply once the thinking block is removed;
2. which lines: the last run of consecutive lines that start with ``|`` (a table); a
   separator line (``|---|:--:|``) is skipped, so a table with a header rule reads too;
3. each cell: its text stripped, made canonical where it is a grid token (``x`` and ``*`` are
   ``×``, ``/`` is ``÷``, ``007`` is ``7``), and kept as written where it is not (``7?``):
   such a cell can only be wrong.

Rows may differ in length: a ragged table is kept as it is, for the probe to count as a shape
error. ``fed_back`` is what the probe's second request shows as the puzzle: the canonical
markdown of a table that reads as a grid, else the rows as written, else nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crossmath.metrics.answers import last_answer_text, strip_thinking
from crossmath.puzzle.grid import (
    Grid,
    GridFormatError,
    canonical_token,
    format_markdown_table,
)

# The probe's two request kinds, as the ``modality`` of their requests and predictions:
TRANSCRIBE = "transcribe"  # the image alone; the model writes the grid back as a table
TRANSCRIBED = "transcribed"  # the model's own transcription, shown back as a text puzzle (T̂)

_SEPARATOR_CELL = re.compile(r":?-+:?")


@dataclass(frozen=True)
class Transcription:
    """The rows of the table a reply wrote: canonical tokens, or the text of unreadable cells."""

    rows: tuple[tuple[str, ...], ...]

    @property
    def found(self) -> bool:
        """Whether the reply holds a table at all."""
        return bool(self.rows)

    def as_grid(self) -> Grid | None:
        """The table as a grid when it is one: rectangular, every cell a grid token."""
        if not self.rows or len({len(row) for row in self.rows}) != 1:
            return None
        try:
            return Grid.from_rows([[canonical_token(cell) for cell in row] for row in self.rows])
        except GridFormatError:
            return None

    def fed_back(self) -> str:
        """The puzzle as the probe shows it back to the model: the grid's canonical markdown
        (as the text modality shows a grid), else the rows as written, else an empty text."""
        grid = self.as_grid()
        if grid is not None:
            return grid.to_markdown()
        return format_markdown_table(self.rows) if self.rows else ""


def read_transcription(output: str) -> Transcription:
    """The table of a transcription reply (see the module docstring); empty without one."""
    answer = last_answer_text(output)
    text = answer if answer is not None else strip_thinking(output)
    return Transcription(tuple(_row_cells(line) for line in _last_table(text)
                               if not _is_separator(line)))


def _last_table(text: str) -> list[str]:
    """The last run of consecutive lines that start with ``|``, each stripped."""
    runs: list[list[str]] = []
    previous_in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        in_table = stripped.startswith("|")
        if in_table:
            if not previous_in_table:
                runs.append([])
            runs[-1].append(stripped)
        previous_in_table = in_table
    return runs[-1] if runs else []


def _cells(line: str) -> list[str]:
    inner = line[1:-1] if line.endswith("|") and len(line) > 1 else line[1:]
    return [cell.strip() for cell in inner.split("|")]


def _is_separator(line: str) -> bool:
    return all(_SEPARATOR_CELL.fullmatch(cell) for cell in _cells(line))


def _row_cells(line: str) -> tuple[str, ...]:
    return tuple(_token(cell) for cell in _cells(line))


def _token(cell: str) -> str:
    try:
        return canonical_token(cell)
    except GridFormatError:
        return cell
