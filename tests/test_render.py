"""The renderer: styles as data, deterministic PNGs, blanks hidden, solutions shown."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import OFFICIAL_STYLES
from PIL import Image

from crossmath.drawing import (
    GridPainter,
    StyleError,
    available_styles,
    load_style,
    render_puzzle_array,
    render_puzzle_png,
)
from crossmath.drawing.naive import draw_reference_image, reference_font, render_reference_png
from crossmath.drawing.png import encode_rgb_png
from crossmath.drawing.style import STYLE_DIR
from crossmath.puzzle.grid import Grid, parse_markdown_grid
from crossmath.puzzle.records import ReleaseLayout, read_official_jsonl

RELEASE_TAGS = {"original": "hr", "noborder": "noborder", "beige": "hr_beige",
                "altstyle": "altstyle"}


@pytest.fixture(scope="module")
def puzzles(official_jsonl: Path) -> list:
    return [record.to_puzzle() for record in read_official_jsonl(official_jsonl)]


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def cell(pixels: np.ndarray, style, position: tuple[int, int]) -> np.ndarray:
    """The inside of a cell: its square less the border."""
    r, c = position
    size, border = style.cell_size, style.border_width
    return pixels[r * size + border:(r + 1) * size - border,
                  c * size + border:(c + 1) * size - border]


def test_shipped_styles_load_with_their_release_layout():
    names = available_styles()
    assert set(RELEASE_TAGS) <= set(names)
    assert len(set(names) - set(RELEASE_TAGS)) >= 2, "at least two robustness styles"
    for name in names:
        style = load_style(name)
        assert style.name == name
        assert style.font_path.is_file()
        expected_tag = RELEASE_TAGS.get(name, name)
        expected_folder = (OFFICIAL_STYLES[name][0] if name in OFFICIAL_STYLES
                           else style.release_folder)
        assert style.layout == ReleaseLayout(expected_folder, expected_tag)
    assert load_style("original").layout.jsonl_name == OFFICIAL_STYLES["original"][1]


def test_a_new_style_is_a_yaml_file(tmp_path):
    data = yaml.safe_load((STYLE_DIR / "original.yaml").read_text())
    data.update(name="mine", number_color="#102030", cell_size=40, font_size=18)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    style = load_style(str(path))
    assert (style.name, style.number_color, style.cell_size) == ("mine", (16, 32, 48), 40)
    grid = parse_markdown_grid("| 7 | + | ? | = | 9 |")
    pixels = render_puzzle_array(grid, style)
    assert pixels.shape == (40, 200, 3)
    assert tuple(pixels[5, 5]) == (16, 32, 48)


def test_unknown_style_lists_the_available_ones():
    with pytest.raises(StyleError) as caught:
        load_style("no-such-style")
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "no-such-style" in message
    for name in available_styles():
        assert name in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"number_color": [300, 0, 0]}, "'number_color'"),
        ({"number_color": "blue"}, "'number_color'"),
        ({"border_width": -1}, "'border_width'"),
        ({"border_width": 30}, "'border_width'"),
        ({"font_file": "Missing.ttf"}, "FreeSans.ttf"),  # lists the bundled fonts
        ({"font_file": "../fonts/FreeSans.ttf"}, "'font_file'"),  # a name, not a path
        ({"text_offset": [1]}, "'text_offset'"),
        ({"colour": [1, 2, 3]}, "'colour'"),
        ({"cell_size": None}, "'cell_size'"),
    ],
)
def test_broken_style_file_names_the_file_and_field(tmp_path, change, expected):
    data = yaml.safe_load((STYLE_DIR / "original.yaml").read_text())
    data.update(change)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(StyleError) as caught:
        load_style(str(path))
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_unreadable_or_incomplete_style_file(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n")
    with pytest.raises(StyleError, match="not valid YAML"):
        load_style(str(bad_yaml))
    incomplete = tmp_path / "incomplete.yaml"
    incomplete.write_text("name: incomplete\nfont_size: 20\n")
    with pytest.raises(StyleError, match="missing field.*'page_color'"):
        load_style(str(incomplete))
    with pytest.raises(StyleError, match="does not exist.*original"):
        load_style(str(tmp_path / "absent.yaml"))


def test_same_puzzle_and_style_give_the_same_bytes(puzzles):
    for name in ("original", "altstyle", "tiny"):
        style = load_style(name)
        for puzzle in puzzles[:4]:
            first = render_puzzle_png(puzzle.grid, style)
            # a fresh painter (cold font and tile caches) and a reloaded style give the same bytes
            fresh = GridPainter(load_style(name)).png(puzzle.grid)
            assert first == fresh == render_puzzle_png(puzzle.grid, style)
            pixels = decode(first)
            assert pixels.shape == (puzzle.grid.n_rows * style.cell_size,
                                    puzzle.grid.n_cols * style.cell_size, 3)
            assert np.array_equal(pixels, render_puzzle_array(puzzle.grid, style))


def test_png_writer_round_trips_any_rgb_array():
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 13, 3), dtype=np.uint8)
    assert np.array_equal(decode(encode_rgb_png(pixels)), pixels)
    with pytest.raises(ValueError, match="uint8"):
        encode_rgb_png(pixels.astype(np.float32))


@pytest.mark.parametrize("name", sorted(RELEASE_TAGS))
def test_tiles_give_the_pixels_of_drawing_cell_by_cell(puzzles, name):
    """Pasting cached tiles must equal drawing every cell onto one image, overlaps included."""
    style = load_style(name)
    font = reference_font(style)
    for puzzle in puzzles:
        for values in (None, puzzle.solution):
            expected = np.asarray(draw_reference_image(puzzle.grid, style, font, values))
            assert np.array_equal(render_puzzle_array(puzzle.grid, style, values), expected)
            # the baseline of bench/render.py writes the very same file
            assert (render_reference_png(puzzle.grid, style, font, values)
                    == render_puzzle_png(puzzle.grid, style, values))


@pytest.mark.parametrize("name", available_styles())
def test_blank_image_never_shows_a_value(puzzles, name):
    style = load_style(name)
    for puzzle in puzzles:
        pixels = render_puzzle_array(puzzle.grid, style)
        for position in puzzle.grid.blanks:
            inside = cell(pixels, style, position)
            assert (inside == style.blank_color).all(), f"{puzzle.name} blank {position} has ink"


@pytest.mark.parametrize("name", available_styles())
def test_solved_image_shows_every_value(puzzles, name):
    """A solved blank carries the ink of its number: the same ink as a given cell of that value."""
    style = load_style(name)
    for puzzle in puzzles[:6]:
        solved = render_puzzle_array(puzzle.grid, style, puzzle.solution)
        given = render_puzzle_array(puzzle.solved_grid(), style)  # blanks turned into numbers
        for position, value in puzzle.solution.items():
            ink = (cell(solved, style, position) != style.blank_color).any(axis=2)
            expected_ink = (cell(given, style, position) != style.number_color).any(axis=2)
            assert ink.any(), f"{puzzle.name} {position}: no ink for {value}"
            assert np.array_equal(ink, expected_ink), f"{puzzle.name} {position}: not {value}"
        # the check tells numbers apart: the ink of value + 1 is not the ink of value
        position, value = next(iter(puzzle.solution.items()))
        other = render_puzzle_array(puzzle.grid, style, {position: value + 1})
        assert not np.array_equal(cell(other, style, position), cell(solved, style, position))


def test_a_number_too_long_for_its_cell_shrinks_inside_it():
    style = load_style("original")
    grid = Grid.from_rows([["123456", "+", "1", "=", "123457"]])
    inside = cell(render_puzzle_array(grid, style), style, (0, 0))
    assert (inside != style.number_color).any(), "the number is drawn"
    # no ink in the columns and rows next to the border: the text was made to fit
    for edge in (inside[:, 0], inside[:, -1], inside[0], inside[-1]):
        assert (edge == style.number_color).all()


@pytest.mark.slow
def test_drawing_package_imports_neither_ray_nor_torch():
    code = ("import sys, crossmath.drawing, crossmath.drawing.release_files, crossmath.drawing.fidelity; "
            "bad = [m for m in ('ray', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
