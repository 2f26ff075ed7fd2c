"""The puzzle grid: cells, equations, and the official markdown table format.

A grid is a rectangle of cell tokens. After parsing every token is canonical:

- ``""``      an empty (non-puzzle) cell
- ``"?"``     a blank number cell the solver must fill
- digits      a given non-negative integer, e.g. ``"42"``
- ``"+" "-" "×" "÷"``  an operator
- ``"="``     the equals sign

An equation is five consecutive cells ``a op b = c``, across (left to right) or
down (top to bottom). Equations meet only at number cells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Literal, Mapping, Sequence

from crossmath.core.errors import UserError

Position = tuple[int, int]
Direction = Literal["across", "down"]

EMPTY = ""
BLANK = "?"
EQUALS = "="
OPERATORS = ("+", "-", "×", "÷")
# The release writes the multiplication sign as ASCII ``x`` in two cells; ``*`` and ``/``
# are the other spellings a hand-edited file plausibly carries.
OPERATOR_ALIASES = {"x": "×", "*": "×", "/": "÷"}
ASCII_OPERATOR = {"+": "+", "-": "-", "×": "*", "÷": "/"}

_NUMBER = re.compile(r"\d+")


class GridFormatError(UserError, ValueError):
    """A grid (or a record holding one) that cannot be read, with where it went wrong."""

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
        row: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.field = field
        self.row = row
        self.column = column
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source if self.line is None else f"{self.source}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, *, source: str | None = None, line: int | None = None,
                field: str | None = None) -> "GridFormatError":
        """The same error with the file, line and field filled in by a caller that knows them."""
        return GridFormatError(
            self.reason,
            source=source if source is not None else self.source,
            line=line if line is not None else self.line,
            field=field if field is not None else self.field,
            row=self.row,
            column=self.column,
        )


def canonical_token(raw: str, *, row: int | None = None, column: int | None = None) -> str:
    """Map one markdown cell's text to its canonical token, or raise naming the cell.

    Rows and columns in errors are 1-based, as a person counts them in the file.
    """
    text = raw.strip()
    if text in ("", BLANK, EQUALS) or text in OPERATORS:
        return text
    if text in OPERATOR_ALIASES:
        return OPERATOR_ALIASES[text]
    if _NUMBER.fullmatch(text):
        return str(int(text))
    raise GridFormatError(
        f"unknown cell {text!r} (expected a number, '?', '=', one of {' '.join(OPERATORS)}, "
        "or an empty cell)",
        row=row,
        column=column,
    )


def is_number_token(token: str) -> bool:
    return bool(token) and token.isdigit()


def is_value_cell(token: str) -> bool:
    """A cell that holds a number in the solved puzzle: a given number or a blank."""
    return token == BLANK or is_number_token(token)


@dataclass(frozen=True)
class Equation:
    """``a op b = c`` over five cells; ``cells`` are the positions of a, b and c."""

    direction: Direction
    start: Position
    operator: str

    @property
    def cells(self) -> tuple[Position, Position, Position]:
        r, c = self.start
        if self.direction == "across":
            return (r, c), (r, c + 2), (r, c + 4)
        return (r, c), (r + 2, c), (r + 4, c)


def evaluate(a: int, operator: str, b: int) -> int | None:
    """``a op b`` in the puzzle's arithmetic: non-negative integers, exact division only."""
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b if a >= b else None
    if operator == "×":
        return a * b
    if operator == "÷":
        return a // b if b and a % b == 0 else None
    raise ValueError(f"unknown operator {operator!r}")


def format_equation(a: int, operator: str, b: int, c: int) -> str:
    """The release's text form of a solved equation, e.g. ``93÷3=31``."""
    return f"{a}{operator}{b}={c}"


@dataclass(frozen=True)
class Grid:
    """An immutable rectangle of canonical cell tokens.

    ``spellings`` keeps the text a source file wrote for the cells whose text was not canonical
    (the release writes ``x`` for ``×`` in two cells). Solving and prompts read only the
    tokens; a caller that shows the file's own text (drawing) reads ``written``. Spellings take
    no part in equality: the same tokens are the same puzzle.
    """

    cells: tuple[tuple[str, ...], ...]
    spellings: Mapping[Position, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        widths = {len(row) for row in self.cells}
        if len(widths) > 1:
            raise GridFormatError(f"rows have different numbers of cells: {sorted(widths)}")

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[str]]) -> "Grid":
        return cls(tuple(tuple(row) for row in rows))

    @property
    def n_rows(self) -> int:
        return len(self.cells)

    @property
    def n_cols(self) -> int:
        return len(self.cells[0]) if self.cells else 0

    def __getitem__(self, position: Position) -> str:
        r, c = position
        return self.cells[r][c]

    def written(self, position: Position) -> str:
        """The cell's text as its source wrote it: its token unless spelled otherwise."""
        return self.spellings.get(position, self[position])

    def get(self, r: int, c: int) -> str:
        """The token at (r, c), or empty outside the grid."""
        if 0 <= r < self.n_rows and 0 <= c < self.n_cols:
            return self.cells[r][c]
        return EMPTY

    def positions(self) -> Iterator[Position]:
        for r in range(self.n_rows):
            for c in range(self.n_cols):
                yield r, c

    @cached_property
    def blanks(self) -> tuple[Position, ...]:
        """Blank cells in the release's answer order: row-major."""
        return tuple(p for p in self.positions() if self[p] == BLANK)

    @cached_property
    def equations(self) -> tuple[Equation, ...]:
        """Every ``a op b = c`` run, across ones first, each direction in row-major order of start.

        That is the order of the release's ``solutions`` text.
        """
        across: list[Equation] = []
        down: list[Equation] = []
        cells = self.cells
        for r, row in enumerate(cells):
            for c, token in enumerate(row):
                if token != EQUALS:
                    continue
                if (
                    3 <= c < self.n_cols - 1
                    and row[c - 2] in OPERATORS
                    and is_value_cell(row[c - 3])
                    and is_value_cell(row[c - 1])
                    and is_value_cell(row[c + 1])
                ):
                    across.append(Equation("across", (r, c - 3), row[c - 2]))
                if (
                    3 <= r < self.n_rows - 1
                    and cells[r - 2][c] in OPERATORS
                    and is_value_cell(cells[r - 3][c])
                    and is_value_cell(cells[r - 1][c])
                    and is_value_cell(cells[r + 1][c])
                ):
                    down.append(Equation("down", (r - 3, c), cells[r - 2][c]))
        # Scanning '=' cells row-major visits starts row-major too: each start is a fixed
        # offset from its '='.
        return tuple(across + down)

    def known_values(self) -> dict[Position, int]:
        """The given numbers by position (a fresh dict the caller may change)."""
        return dict(self._known_values)

    @cached_property
    def _known_values(self) -> dict[Position, int]:
        return {
            (r, c): int(token)
            for r, row in enumerate(self.cells)
            for c, token in enumerate(row)
            if is_number_token(token)
        }

    def with_values(self, values: dict[Position, int]) -> "Grid":
        """A copy with the given cells replaced by numbers (e.g. blanks filled in)."""
        rows = [list(row) for row in self.cells]
        for (r, c), v in values.items():
            rows[r][c] = str(v)
        kept = {p: text for p, text in self.spellings.items() if p not in values}
        return Grid(tuple(tuple(row) for row in rows), kept)

    def to_markdown(self, *, as_written: bool = False) -> str:
        """The release's markdown table of the tokens, or with ``as_written`` of each cell's
        text as its source spelled it (which parses back to the same grid, spellings kept)."""
        if not (as_written and self.spellings):
            return format_markdown_table(self.cells)
        return format_markdown_table([[self.written((r, c)) for c in range(self.n_cols)]
                                      for r in range(self.n_rows)])


def format_markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cell text as the release writes them: ``| a | b |``, an empty cell as one space."""
    return "\n".join("|" + "|".join(f" {cell or ' '} " for cell in row) + "|" for row in rows)


def split_markdown_table(text: str) -> list[list[str]]:
    """Rows of raw (stripped) cell text from a markdown table, checking its shape.

    A separator row (``|---|---|``) is skipped, so tables written by other tools also read.
    """
    rows: list[list[str]] = []
    for row_number, line in enumerate(text.strip("\n").split("\n"), start=1):
        stripped = line.strip()
        if not (stripped.startswith("|") and stripped.endswith("|") and len(stripped) >= 2):
            raise GridFormatError(f"not a markdown table row: {line!r}", row=row_number)
        cells = [cell.strip() for cell in stripped[1:-1].split("|")]
        if all(re.fullmatch(r":?-{3,}:?", cell) for cell in cells):
            continue
        if rows and len(cells) != len(rows[0]):
            raise GridFormatError(
                f"has {len(cells)} cells, the first row has {len(rows[0])}", row=row_number
            )
        rows.append(cells)
    if not rows:
        raise GridFormatError("empty table")
    return rows


def parse_markdown_grid(text: str) -> Grid:
    """Parse the release's ``markdown_table`` into a canonical grid that keeps its spellings."""
    cells: list[tuple[str, ...]] = []
    spellings: dict[Position, str] = {}
    for r, row in enumerate(split_markdown_table(text)):
        tokens = tuple(canonical_token(raw, row=r + 1, column=c + 1) for c, raw in enumerate(row))
        spellings.update(((r, c), raw) for c, (raw, token) in enumerate(zip(row, tokens))
                         if raw != token)
        cells.append(tokens)
    return Grid(tuple(cells), spellings)
