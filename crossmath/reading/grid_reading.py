"""A puzzle picture read back into its grid: lattice, then each cell, then the blanks.

1. **The lattice** (``lattice``): where the cells are, how many rows and columns.
2. **Each cell** (``cells``): its fill colour and its ink.
3. **Numbers and operators.** Cells with ink are numbers or operators. The styles give the
   two their own fill colours, and the reader does not know which is which, so it groups the
   cells by fill: a group whose cells mostly match an operator glyph well (``glyphs``) is the
   operators' (each cell the glyph it matches), the others are numbers, read by the OCR
   engine the caller passes (``NumberReader``: digits only, None when it cannot read one).
   Where all ink shares one fill, or a group is split, each cell is judged by its own match.
4. **Blanks** are cells without ink. The page's colour is the most common fill among them
   (cells outside the puzzle far outnumber blanks). A cell whose fill is not the page's is a
   blank: it was drawn, and only blanks are drawn empty. Where the style paints blanks in the
   page's colour (``original``: white on white), a cell in the page's colour is a blank when
   its own outline closes inside it (2 px or thicker outlines), or, where outlines are too
   thin to tell a cell's own from its neighbours', when lines enclose it and it stands where
   the operators and ``=`` read put a number (``a op b = c``).

What cannot be read is said so: a number the engine cannot read, or an operator cell that
matches no glyph well, is ``UNREAD``, never a guess. ``GridReading.solver_grid`` gives the
solver what was read: the unread numbers as unknowns, equations through an unread operator
left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from crossmath.puzzle.grid import (
    BLANK,
    EMPTY,
    EQUALS,
    OPERATORS,
    Grid,
    Position,
    is_number_token,
)
from crossmath.reading.cells import (
    CellLook,
    closed_outline,
    enclosed,
    look_at_cell,
    same_color,
)
from crossmath.reading.glyphs import match_symbol
from crossmath.reading.lattice import Lattice, LatticeNotFound, find_lattice

# The version of the readings this package makes: bumped whenever the same picture can read
# differently, so that identities holding it never mix old readings with new ones.
READING_VERSION = 1
UNREAD = "unread"  # a cell with ink that could not be read, as the transcription writes it
DIGITS = "0123456789"  # what a number cell may hold: the alphabet its reader is given
OPERATOR_MATCH = 0.75  # a cell whose best glyph score reaches this looks like an operator
MIN_OPERATOR_MATCH = 0.6  # an operator cell matching no glyph this well is unread
CLEAR_VOTE = 2 / 3  # a fill group is of one kind when this share of its cells says so

# Reads the digits in each crop (RGB, one number each); None for a crop it cannot read.
NumberReader = Callable[[Sequence[np.ndarray]], Sequence[str | None]]


@dataclass(frozen=True)
class GridReading:
    """The grid as read: canonical tokens, ``UNREAD`` where a cell could not be read;
    ``unread_numbers`` are the unread cells that are numbers (the others are operators)."""

    lattice: Lattice
    cells: tuple[tuple[str, ...], ...]
    unread_numbers: frozenset[Position] = frozenset()

    @property
    def unread(self) -> tuple[Position, ...]:
        return tuple((r, c) for r, row in enumerate(self.cells) for c, token in enumerate(row)
                     if token == UNREAD)

    @property
    def complete(self) -> bool:
        return not self.unread

    @property
    def blanks(self) -> tuple[Position, ...]:
        """The cells read as blanks, in the release's answer order (row-major)."""
        return tuple((r, c) for r, row in enumerate(self.cells) for c, token in enumerate(row)
                     if token == BLANK)

    def to_markdown(self) -> str:
        """The grid as the text modality writes one (an unread cell as ``unread``)."""
        return Grid(self.cells).to_markdown()

    def solver_grid(self) -> Grid:
        """What the solver is given: the grid read, each unread number an unknown (``?``) and
        each unread operator left out, so that the equations through it drop out; an unknown
        that no equation holds is left out too."""
        rows = [list(row) for row in self.cells]
        for r, c in self.unread:
            rows[r][c] = BLANK if (r, c) in self.unread_numbers else EMPTY
        grid = Grid.from_rows(rows)
        held = {p for equation in grid.equations for p in equation.cells}
        stray = [p for p in self.unread_numbers if p not in held]
        for r, c in stray:
            rows[r][c] = EMPTY
        return Grid.from_rows(rows) if stray else grid


def read_grid(pixels: np.ndarray, read_numbers: NumberReader) -> GridReading:
    """Read an RGB ``(height, width, 3)`` uint8 puzzle image. Raises ``LatticeNotFound`` when
    no grid of cells is in it."""
    lattice = find_lattice(pixels)
    looks = {(r, c): look_at_cell(pixels, lattice, r, c)
             for r in range(lattice.rows) for c in range(lattice.cols)}
    page = _page_fill(looks)
    tokens: dict[Position, str] = {}
    marked = [p for p, look in looks.items() if look.has_ink]
    matches = {p: match_symbol(looks[p].ink) for p in marked}
    operators = _operator_cells(marked, looks, {p: m.score for p, m in matches.items()})
    for p in operators:
        tokens[p] = matches[p].symbol if matches[p].score >= MIN_OPERATOR_MATCH else UNREAD
    numbers = [p for p in marked if p not in operators]
    for p, digits in zip(numbers, read_numbers([looks[p].crop for p in numbers]), strict=True):
        tokens[p] = str(int(digits)) if digits and digits.isdigit() else UNREAD
    plain = [p for p, look in looks.items() if not look.has_ink]
    for p in plain:
        tokens[p] = EMPTY if same_color(looks[p].fill, page) else BLANK
    for p in _blanks_in_page_color(pixels, lattice, page, tokens, plain):
        tokens[p] = BLANK
    cells = [[tokens[r, c] for c in range(lattice.cols)] for r in range(lattice.rows)]
    return GridReading(lattice, tuple(tuple(row) for row in cells),
                       frozenset(p for p in numbers if tokens[p] == UNREAD))


def _blanks_in_page_color(pixels: np.ndarray, lattice: Lattice, page: tuple[int, int, int],
                          tokens: dict[Position, str], plain: list[Position]) -> list[Position]:
    """The cells without ink, in the page's colour, that are blanks all the same. What a blank
    looks like is learnt from the picture: a fill of its own (none then), else its own closed
    outline (the cells that show one), else only its place: enclosed by lines and where the
    operators and ``=`` put a number."""
    if any(tokens[p] == BLANK for p in plain):
        return []
    candidates = [p for p in plain if tokens[p] == EMPTY]
    closed = [p for p in candidates if closed_outline(pixels, lattice, *p, page)]
    if closed:
        return closed
    places = _number_places([[tokens[r, c] for c in range(lattice.cols)]
                             for r in range(lattice.rows)])
    return [p for p in candidates if p in places and enclosed(pixels, lattice, *p, page)]


def _page_fill(looks: dict[Position, CellLook]) -> tuple[int, int, int]:
    """The page's colour: the most common fill of the cells without ink (cells outside the
    puzzle far outnumber blanks: by 18 or more in each of the official sample's 12 puzzles
    and 120 generated ones)."""
    fills = Counter(look.fill for look in looks.values() if not look.has_ink)
    if not fills:
        raise LatticeNotFound("every cell of the grid found holds ink: no page around it")
    return fills.most_common(1)[0][0]


def _operator_cells(marked: list[Position], looks: dict[Position, CellLook],
                    scores: dict[Position, float]) -> set[Position]:
    """The cells with ink that hold operators or ``=``: by fill group where the groups are
    clear, else cell by cell."""
    groups: list[list[Position]] = []
    for p in marked:
        group = next((g for g in groups if same_color(looks[g[0]].fill, looks[p].fill)), None)
        if group is None:
            groups.append([p])
        else:
            group.append(p)
    operators = set()
    for group in groups:
        votes = [scores[p] >= OPERATOR_MATCH for p in group]
        share = sum(votes) / len(votes)
        if len(groups) > 1 and share >= CLEAR_VOTE:
            operators.update(group)
        elif len(groups) == 1 or share > 1 - CLEAR_VOTE:
            operators.update(p for p, vote in zip(group, votes) if vote)
    return operators


def _number_places(cells: Sequence[Sequence[str]]) -> set[Position]:
    """Where the operators and ``=`` read put numbers: a, b and c of every ``a op b = c``
    whose a, b and c are not operators. An operator or ``=`` belongs to one equation only:
    where an across and a down pattern share one, the pattern with fewer numbers read among
    its a, b and c is a coincidence of two other equations' cells, and is left out."""
    n_rows, n_cols = len(cells), len(cells[0]) if cells else 0
    patterns: list[tuple[tuple[Position, Position], tuple[Position, ...]]] = []
    for r in range(n_rows):
        for c in range(n_cols):
            if cells[r][c] != EQUALS:
                continue
            if 3 <= c < n_cols - 1 and cells[r][c - 2] in OPERATORS:
                patterns.append((((r, c - 2), (r, c)), ((r, c - 3), (r, c - 1), (r, c + 1))))
            if 3 <= r < n_rows - 1 and cells[r - 2][c] in OPERATORS:
                patterns.append((((r - 2, c), (r, c)), ((r - 3, c), (r - 1, c), (r + 1, c))))
    patterns = [(marks, places) for marks, places in patterns
                if not any(_is_operator(cells[r][c]) for r, c in places)]
    numbers = [sum(is_number_token(cells[r][c]) for r, c in places) for _, places in patterns]
    kept: set[Position] = set()
    for index, (marks, places) in enumerate(patterns):
        rivals = [numbers[other] for other, (other_marks, _) in enumerate(patterns)
                  if other != index and set(marks) & set(other_marks)]
        if all(numbers[index] >= rival for rival in rivals):
            kept.update(places)
    return kept


def _is_operator(token: str) -> bool:
    return token in OPERATORS or token == EQUALS
