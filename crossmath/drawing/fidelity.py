"""How close our renders are to the release's own images: size, cell colours, pixel difference.

``compare_with_release(jsonl, style)`` re-renders every record of an official-format file from
its ``markdown_table`` and compares it with the record's ``img_blank`` image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from crossmath.drawing.painter import render_puzzle_array
from crossmath.drawing.style import Color, Style
from crossmath.puzzle.grid import Grid, Position
from crossmath.puzzle.records import read_official_jsonl


@dataclass(frozen=True)
class ImageComparison:
    """One record: ours against the release's image."""

    name: str
    official_size: tuple[int, int]
    our_size: tuple[int, int]
    wrong_cells: tuple[str, ...]  # "row,col: ours (r,g,b) official (r,g,b) expected (r,g,b)"
    mean_abs_diff: float  # over all pixels and channels, 0..255; nan when sizes differ

    @property
    def same_size(self) -> bool:
        return self.official_size == self.our_size


@dataclass(frozen=True)
class StyleFidelity:
    style: str
    images: tuple[ImageComparison, ...]

    @property
    def mean_abs_diff(self) -> float:
        return float(np.mean([image.mean_abs_diff for image in self.images]))

    @property
    def all_sizes_match(self) -> bool:
        return all(image.same_size for image in self.images)

    @property
    def wrong_cells(self) -> list[str]:
        return [f"{image.name} {cell}" for image in self.images for cell in image.wrong_cells]


def cell_colors(pixels: np.ndarray, grid: Grid, style: Style) -> dict[Position, Color]:
    """Each cell's colour in an RGB image of ``grid``, read just inside its top-left border
    corner, where no text reaches."""
    inset = style.border_width + 2
    return {(r, c): tuple(int(v) for v in pixels[r * style.cell_size + inset,
                                                 c * style.cell_size + inset])
            for r, c in grid.positions()}


def compare_image(name: str, grid: Grid, style: Style, official: np.ndarray) -> ImageComparison:
    """Compare our blank render of ``grid`` with the release's RGB array of the same puzzle."""
    ours = render_puzzle_array(grid, style)
    our_size = (ours.shape[1], ours.shape[0])
    official_size = (official.shape[1], official.shape[0])
    if our_size != official_size:
        return ImageComparison(name, official_size, our_size, (), float("nan"))
    mine, theirs = cell_colors(ours, grid, style), cell_colors(official, grid, style)
    wrong = []
    for position in grid.positions():
        expected = style.cell_color(grid.written(position))
        if not (mine[position] == theirs[position] == expected):
            wrong.append(f"{position[0]},{position[1]}: ours {mine[position]} official "
                         f"{theirs[position]} expected {expected}")
    difference = np.abs(ours.astype(np.int16) - official.astype(np.int16)).mean()
    return ImageComparison(name, official_size, our_size, tuple(wrong), float(difference))


def compare_with_release(jsonl: str | Path, style: Style) -> StyleFidelity:
    """Every record of an official-format jsonl, re-rendered in ``style``, against its image."""
    images = []
    for record in read_official_jsonl(jsonl):
        with Image.open(record.image_blank_path) as image:
            official = np.asarray(image.convert("RGB"))
        images.append(compare_image(record.name, record.grid(), style, official))
    return StyleFidelity(style.name, tuple(images))
