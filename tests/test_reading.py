"""The pure image-reading package (no OCR engine): the lattice in every style, with and without
a margin; operators by template; blanks told from cells outside the puzzle, in the page's
colour too; and what the solver gets from a reading with unread cells.

Numbers are read here by a stand-in that hands back the true grid's numbers in the order the
reader asks for them: the reader only gets them right if it picked exactly the number cells.
The OCR engine itself is tested in ``test_reader.py``."""

from __future__ import annotations

import numpy as np
import pytest

from crossmath.drawing import available_styles, load_style, render_puzzle_array
from crossmath.models.baselines import solution_reply
from crossmath.puzzle.grid import BLANK, EMPTY, Grid, is_number_token
from crossmath.puzzle.records import read_official_jsonl
from crossmath.puzzle.solver import search_solutions
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.reading import (
    UNREAD,
    GridReading,
    Lattice,
    LatticeNotFound,
    find_lattice,
    read_grid,
)
from crossmath.reading.cells import look_at_cell
from crossmath.reading.glyphs import SYMBOLS, match_symbol
from crossmath.reading.grid_reading import OPERATOR_MATCH
from tests.test_baselines import answer_of

PUZZLES = [*generate_puzzles(1, "easy", seed=21), *generate_puzzles(1, "hard", seed=21)]


def numbers_of(grid: Grid):
    """A number reader that returns the grid's numbers, row-major, one per crop asked about."""
    numbers = [grid[p] for p in grid.positions() if is_number_token(grid[p])]

    def read(crops):
        assert len(crops) == len(numbers), "the reader took other cells for numbers"
        return numbers

    return read


def with_margin(pixels: np.ndarray, page, top: int, left: int) -> np.ndarray:
    framed = np.empty((pixels.shape[0] + top + 9, pixels.shape[1] + left + 4, 3), np.uint8)
    framed[:] = page
    framed[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
    return framed


@pytest.mark.parametrize("style_name", available_styles())
def test_the_lattice_is_found_in_every_style_with_or_without_a_margin(style_name):
    style = load_style(style_name)
    for puzzle in PUZZLES:
        pixels = render_puzzle_array(puzzle.grid, style)
        for image, origin in ((pixels, (0, 0)),
                              (with_margin(pixels, style.page_color, 7, 13), (13, 7))):
            lattice = find_lattice(image)
            assert (lattice.left, lattice.top) == origin
            assert lattice.pitch == style.cell_size
            assert (lattice.rows, lattice.cols) == (puzzle.grid.n_rows, puzzle.grid.n_cols)


@pytest.mark.parametrize("style_name", available_styles())
def test_every_cell_is_classified_right_in_every_style(style_name):
    """Numbers, operators, ``=``, blanks and cells outside the puzzle, in every style."""
    style = load_style(style_name)
    for puzzle in PUZZLES:
        reading = read_grid(render_puzzle_array(puzzle.grid, style), numbers_of(puzzle.grid))
        assert reading.cells == puzzle.grid.cells and reading.complete


@pytest.mark.parametrize("style_name", ["original", "tiny", "noborder", "altstyle"])
def test_a_cell_outside_the_puzzle_enclosed_by_drawn_cells_is_not_a_blank(official_sample,
                                                                           style_name):
    """Puzzle 9 of the release has an empty cell whose four neighbours are drawn, in a
    column where an operator and an ``=`` of two across equations look like a down equation:
    it stays empty, with white blanks and thick (original) or thin (tiny) outlines alike."""
    record = next(r for r in read_official_jsonl(official_sample / "Original" /
                                                 "testset_hr.jsonl")
                  if r.name == "math_puzzle_0009")
    grid = record.grid()
    assert grid[7, 5] == EMPTY and all(grid[p] for p in ((6, 5), (8, 5), (7, 4), (7, 6)))
    reading = read_grid(render_puzzle_array(grid, load_style(style_name)), numbers_of(grid))
    assert reading.cells == grid.cells


@pytest.mark.parametrize("style_name", available_styles())
def test_operator_templates_read_each_symbol_as_the_style_draws_it(style_name):
    style = load_style(style_name)
    row = Grid.from_rows([SYMBOLS])
    pixels = render_puzzle_array(row, style)
    lattice = Lattice(0, 0, style.cell_size, 1, len(SYMBOLS))
    for col, symbol in enumerate(SYMBOLS):
        match = match_symbol(look_at_cell(pixels, lattice, 0, col).ink)
        assert match.symbol == symbol and match.score >= OPERATOR_MATCH, (symbol, match)


@pytest.mark.parametrize("image", [
    np.full((300, 400, 3), 255, np.uint8),
    np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8),
    np.zeros((20, 20, 3), np.uint8),
], ids=["plain", "noise", "tiny"])
def test_an_image_without_a_grid_says_so(image):
    with pytest.raises(LatticeNotFound):
        read_grid(image, lambda crops: [None] * len(crops))


def test_the_solver_gets_what_was_read_and_answers_only_the_blanks_read():
    """An unread number is an unknown the solver may still pin down (then the blanks are
    answered, and only they); an unread operator takes its equation out, and a blank no
    longer pinned gets no answer."""
    puzzle = PUZZLES[0]
    grid = puzzle.grid
    lattice = find_lattice(render_puzzle_array(grid, load_style("original")))

    def read_with(unread: dict) -> GridReading:
        rows = [list(row) for row in grid.cells]
        for r, c in unread:
            rows[r][c] = UNREAD
        return GridReading(lattice, tuple(map(tuple, rows)),
                           frozenset(p for p, is_number in unread.items() if is_number))

    pinned = [p for p in grid.positions() if is_number_token(grid[p])
              and search_solutions(_with_unknown(grid, p)).status == "unique"]
    assert pinned, "some given number follows from the rest"
    reading = read_with({pinned[0]: True})
    assert reading.solver_grid()[pinned[0]] == BLANK and reading.blanks == grid.blanks
    assert answer_of(solution_reply(reading.solver_grid(), reading.blanks)) == puzzle.answer

    blank = grid.blanks[0]
    operators = {}
    for eq in grid.equations:
        if blank in eq.cells:
            (r, c), step = eq.start, (0, 1) if eq.direction == "across" else (1, 0)
            operators[r + step[0], c + step[1]] = False
    reading = read_with(operators)
    solver_grid = reading.solver_grid()
    assert all(solver_grid[p] == EMPTY for p in operators)
    assert not any(blank in eq.cells for eq in solver_grid.equations)
    assert answer_of(solution_reply(solver_grid, reading.blanks)) is None


def _with_unknown(grid: Grid, position) -> Grid:
    return Grid.from_rows([[BLANK if (r, c) == position else grid[r, c]
                            for c in range(grid.n_cols)] for r in range(grid.n_rows)])
