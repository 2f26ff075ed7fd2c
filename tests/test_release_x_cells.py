"""The release's ASCII ``x`` cells (its puzzle 43): solved and prompted as ``×``, drawn as written.

The release writes the multiplication sign as the letter ``x`` in two cells of puzzle 43 (not
among the shared sample's puzzles), and its images of that puzzle, in all four styles, show the
letter on the number-cell colour. The record below is that puzzle's text, copied from the
release's ``Original/testset_hr.jsonl``; no release image is kept here.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import OFFICIAL_STYLES, REPO_ROOT
from PIL import Image

from crossmath.drawing import load_style, render_puzzle_array, render_puzzle_png
from crossmath.drawing.fidelity import cell_colors
from crossmath.drawing.naive import draw_reference_image, reference_font
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.pipeline.calls import CallCapacity, call_table, plan_calls
from crossmath.pipeline.render_stage import RenderImages
from crossmath.puzzle.consistency import lint_record
from crossmath.puzzle.grid import parse_markdown_grid
from crossmath.puzzle.records import read_official_jsonl
from crossmath.puzzle.solver import search_solutions
from crossmath.tasks.crossmath.requests import RequestPlan


def table(*rows: str) -> str:
    """A 13-column release table from rows of cells separated by spaces (``.`` = empty)."""
    return "\n".join("|" + "|".join(f" {' ' if cell == '.' else cell} " for cell in row.split())
                     + "|" for row in rows)


PUZZLE_43 = {
    "img": "test_images_hr/math_puzzle_0043.png",
    "img_blank": "test_images_blank_hr/math_puzzle_0043_blank.png",
    "problems": 12, "operators": "+-*/", "difficulty": "hard", "range": [2, 229],
    "markdown_table": table(
        ". . . . . . . . . . ? . .", ". . . . . . . . . . - . .", ". . . . . . . . . . 86 . .",
        ". . . . . . . . . . = . .", ". . . . . . . . ? + 36 = ?", ". . . . . . . . + . . . .",
        ". . . . . . . . 5 . . . .", ". . . . . . . . = . . . .", ". . . . 203 - ? = ? . . . .",
        ". . . . . . - . . . . . .", ". . . . ? . 84 . 93 - ? = 8", ". . . . - . = . - . . . .",
        ". . . . 3 x ? = ? . 11 . .", ". . . . = . . . = . x . .", "22 + ? = 53 . ? ÷ 12 = 10 . .",
        ". . . . . . . . . . = . .", ". . . . . . . . . . ? . ."),
    "markdown_answer": table(
        ". . . . . . . . . . 122 . .", ". . . . . . . . . . . . .", ". . . . . . . . . . . . .",
        ". . . . . . . . . . . . .", ". . . . . . . . 87 . . . 123", ". . . . . . . . . . . . .",
        ". . . . . . . . . . . . .", ". . . . . . . . . . . . .", ". . . . . . 111 . 92 . . . .",
        ". . . . . . . . . . . . .", ". . . . 56 . . . . . 85 . .", ". . . . . . . . . . . . .",
        ". . . . . . 27 . 81 . . . .", ". . . . . . . . . . . . .", ". . 31 . . . 120 . . . . . .",
        ". . . . . . . . . . . . .", ". . . . . . . . . . 110 . ."),
    "markdown_answer_step": table(
        ". . . . . . . . . . step1 . .", ". . . . . . . . . . . . .", ". . . . . . . . . . . . .",
        ". . . . . . . . . . . . .", ". . . . . . . . step5 . . . step6",
        ". . . . . . . . . . . . .", ". . . . . . . . . . . . .", ". . . . . . . . . . . . .",
        ". . . . . . step3 . step4 . . . .", ". . . . . . . . . . . . .",
        ". . . . step1 . . . . . step1 . .", ". . . . . . . . . . . . .",
        ". . . . . . step2 . step1 . . . .", ". . . . . . . . . . . . .",
        ". . step1 . . . step1 . . . . . .", ". . . . . . . . . . . . .",
        ". . . . . . . . . . step1 . ."),
    "solutions": "Across\n87+36=123\n203-111=92\n93-85=8\n3×27=81\n22+31=53\n120÷12=10\n\n"
                 "Down\n122-86=36\n87+5=92\n111-84=27\n56-3=53\n93-81=12\n11×10=110",
}
X_CELLS = ((12, 5), (13, 10))
ANSWER = ["122", "87", "123", "111", "92", "56", "85", "27", "81", "31", "120", "110"]


@pytest.fixture(scope="module")
def record_file(tmp_path_factory):
    """Puzzle 43's record where the release keeps it: ``Original/testset_hr.jsonl``."""
    folder = tmp_path_factory.mktemp("release") / OFFICIAL_STYLES["original"][0]
    folder.mkdir()
    path = folder / OFFICIAL_STYLES["original"][1]
    path.write_text(json.dumps(PUZZLE_43, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def record(record_file):
    [record] = read_official_jsonl(record_file)
    return record


def test_x_cells_are_multiplications_for_solving(record):
    grid = record.grid()
    assert grid.spellings == {position: "x" for position in X_CELLS}
    assert all(grid[position] == "×" for position in X_CELLS)
    assert grid == parse_markdown_grid(PUZZLE_43["markdown_table"].replace(" x ", " × "))
    operators = {eq.start: eq.operator for eq in grid.equations}
    assert operators[(12, 4)] == "×" and operators[(12, 10)] == "×"  # 3×27=81 and 11×10=110
    [solution] = search_solutions(grid, limit=2).solutions
    assert [str(solution[p]) for p in grid.blanks] == ANSWER == record.answer_tokens()
    assert lint_record(record).ok, lint_record(record).describe()


def test_text_prompts_show_the_multiplication_sign_and_images_keep_the_spelling(record):
    """The pipeline's text prompt gets ``×``; the grid its render stage draws keeps ``x``."""
    puzzle = record.to_puzzle()
    styles = {"noborder": load_style("noborder")}
    plan = RequestPlan(["text", "image"], styles, 1, load_prompt_template(DEFAULT_PROMPT), "model")
    text_unit, image_unit = plan.units([puzzle])
    prompt = "".join(text_unit["requests"][0]["prompt_texts"])
    assert "| 3 | × | ? |" in prompt and "| x |" not in prompt
    assert image_unit["grid"].count("| x |") == 2
    assert parse_markdown_grid(image_unit["grid"]) == puzzle.grid

    [call] = plan_calls([image_unit], CallCapacity(1), styles)
    [unit] = RenderImages(styles)(call_table(call)).column("units").to_pylist()[0]
    [png] = unit["images"]
    assert png == render_puzzle_png(puzzle.grid, load_style("noborder"))
    with Image.open(io.BytesIO(png)) as image:
        colors = cell_colors(np.asarray(image.convert("RGB")), puzzle.grid, load_style("noborder"))
    assert {colors[p] for p in X_CELLS} == {load_style("noborder").number_color}


@pytest.mark.parametrize("name", sorted(OFFICIAL_STYLES))
def test_x_cells_are_drawn_as_the_release_draws_them(record, name):
    style = load_style(name)
    grid = record.grid()
    pixels = render_puzzle_array(grid, style)
    colors = cell_colors(pixels, grid, style)
    assert {colors[p] for p in X_CELLS} == {style.number_color}  # as in the release's images
    assert colors[(14, 7)] == style.operator_color  # the ÷ written as ÷ stays an operator
    assert colors == {p: style.cell_color(grid.written(p)) for p in grid.positions()}
    # The letter is drawn, not the sign: the canonical grid draws something else there.
    canonical = render_puzzle_array(parse_markdown_grid(grid.to_markdown()), style)
    size = style.cell_size
    for r, c in X_CELLS:
        here = np.s_[r * size:(r + 1) * size, c * size:(c + 1) * size]
        assert cell_colors(canonical, grid, style)[(r, c)] == style.operator_color
        x_ink = (pixels[here] != style.number_color).any(axis=2)
        sign_ink = (canonical[here] != style.operator_color).any(axis=2)
        assert not np.array_equal(x_ink, sign_ink)
    font = reference_font(style)
    for values in (None, record.to_puzzle().solution):
        expected = np.asarray(draw_reference_image(grid, style, font, values))
        assert np.array_equal(render_puzzle_array(grid, style, values), expected)


@pytest.mark.slow
def test_render_command_draws_x_cells_as_written(record_file, record, tmp_path):
    done = subprocess.run([sys.executable, "-m", "crossmath.render", f"path={record_file}",
                           "style=beige", f"out={tmp_path}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    png = (tmp_path / PUZZLE_43["img_blank"]).read_bytes()
    style = load_style("beige")
    with Image.open(io.BytesIO(png)) as image:
        colors = cell_colors(np.asarray(image.convert("RGB")), record.grid(), style)
    assert {colors[p] for p in X_CELLS} == {style.number_color}
