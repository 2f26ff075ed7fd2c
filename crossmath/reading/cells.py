"""What one cell of a found lattice shows: its fill colour, the ink drawn on it, the lines
around it.

A cell's **fill** is its most common colour. Its **interior** is the cell less its outline:
lines along the cell's sides that are mostly not fill are peeled off, however thick (the
styles draw none, 1, 2 or 3 px). Its **ink** is every interior pixel far from the fill: the
text. The threshold is relative to the cell's strongest contrast, so grey text on a pale cell
(``lowcontrast``) and black text on blue are cut alike; a cell whose strongest contrast is
weak holds no ink.

For a cell in the page's colour, the lines around it tell a blank drawn white on white from a
cell outside the puzzle: ``closed_outline`` (its own outline, inside it) and ``enclosed``
(lines across all four boundaries, its own or its neighbours').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossmath.reading.lattice import Lattice, channel_distance

OUTLINE_SHARE = 0.6  # a side line with at least this share of non-fill pixels is outline
MAX_OUTLINE = 1 / 6  # of the cell size: no outline is thicker
LINE_SHARE = 0.9  # a pixel column along a side is a line when this share of it is off-page
INK_SHARE = 0.4  # a pixel is ink when it is this share of the cell's strongest contrast away
MIN_INK_CONTRAST = 24  # below this (max channel difference) nothing is ink
MIN_INK_PIXELS = 4  # fewer ink pixels than this is noise, not a glyph
SAME_FILL = 6  # max channel difference between two fills that are the same colour


@dataclass(frozen=True)
class CellLook:
    """One cell: ``fill`` colour, and ``ink`` (a boolean mask over ``crop``, the cell's
    interior in RGB), cropped to the ink with a little fill around it; ``ink`` is None for a
    cell with no ink."""

    fill: tuple[int, int, int]
    crop: np.ndarray | None = None
    ink: np.ndarray | None = None

    @property
    def has_ink(self) -> bool:
        return self.ink is not None


def same_color(a: tuple[int, int, int], b: tuple[int, int, int],
               tolerance: int = SAME_FILL) -> bool:
    return max(abs(int(x) - int(y)) for x, y in zip(a, b)) <= tolerance


def look_at_cell(pixels: np.ndarray, lattice: Lattice, row: int, col: int) -> CellLook:
    """The fill and ink of cell (``row``, ``col``) of ``lattice`` in the RGB image."""
    x0, y0, x1, y1 = lattice.cell_box(row, col)
    cell = pixels[y0:y1, x0:x1]
    fill = _mode_color(cell)
    distance = channel_distance(cell.astype(np.int16), np.array(fill, dtype=np.int16))
    top, bottom, left, right = _inside_outline(distance > SAME_FILL)
    interior, distance = cell[top:bottom, left:right], distance[top:bottom, left:right]
    ink = ink_mask(distance)
    if ink is None:
        return CellLook(fill)
    ys, xs = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    pad = max(2, (ys[-1] - ys[0] + 1) // 4)
    top, bottom = max(0, ys[0] - pad), min(ink.shape[0], ys[-1] + 1 + pad)
    left, right = max(0, xs[0] - pad), min(ink.shape[1], xs[-1] + 1 + pad)
    return CellLook(fill, interior[top:bottom, left:right], ink[top:bottom, left:right])


def _lined(band: np.ndarray, page: tuple[int, int, int]) -> bool:
    """Whether a band of pixel columns (side by side along a cell's side) holds a line: one
    column mostly off the page's colour. An empty band (off the image) cannot be seen and
    counts as lined."""
    if band.size == 0:
        return True
    off_page = channel_distance(band.astype(np.int16), np.array(page, dtype=np.int16)) > SAME_FILL
    return bool((off_page.mean(axis=0) >= LINE_SHARE).any())


def _sides(pixels: np.ndarray, lattice: Lattice, row: int, col: int, inside: bool,
           ) -> list[np.ndarray]:
    """The pixels along each side of a cell, in the middle half of it: the cell's own first
    and last pixel columns and rows (``inside``), or a band across each boundary line."""
    x0, y0, x1, y1 = lattice.cell_box(row, col)
    quarter = lattice.pitch // 4
    rows, cols = slice(y0 + quarter, y1 - quarter), slice(x0 + quarter, x1 - quarter)
    if inside:
        return [pixels[rows, x0:x0 + 1], pixels[rows, x1 - 1:x1],
                pixels[y0:y0 + 1, cols].transpose(1, 0, 2),
                pixels[y1 - 1:y1, cols].transpose(1, 0, 2)]
    return [pixels[rows, max(0, x0 - 1):x0 + 2], pixels[rows, x1 - 1:x1 + 2],
            pixels[max(0, y0 - 1):y0 + 2, cols].transpose(1, 0, 2),
            pixels[y1 - 1:y1 + 2, cols].transpose(1, 0, 2)]


def enclosed(pixels: np.ndarray, lattice: Lattice, row: int, col: int,
             page: tuple[int, int, int]) -> bool:
    """Whether lines run across all four of the cell's boundaries (a boundary on the image's
    edge counts as lined). A cell outside the puzzle shows a line on a side only where its
    neighbour there is drawn; a drawn cell in the page's colour shows four."""
    x0, y0, x1, y1 = lattice.cell_box(row, col)
    height, width = pixels.shape[:2]
    on_edge = (x0 <= 0, x1 >= width, y0 <= 0, y1 >= height)
    return all(edge or _lined(side, page)
               for edge, side in zip(on_edge, _sides(pixels, lattice, row, col, inside=False)))


def closed_outline(pixels: np.ndarray, lattice: Lattice, row: int, col: int,
                   page: tuple[int, int, int]) -> bool:
    """Whether the cell's own first and last pixel columns and rows are lines: an outline
    2 px or thicker, drawn inside the cell, shows there; a neighbour's spills onto the first
    column or row only."""
    return all(_lined(side, page) for side in _sides(pixels, lattice, row, col, inside=True))


def _inside_outline(off_fill: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the cell less the lines along its sides that are
    mostly not fill (its outline, or a neighbour's spilling over)."""
    height, width = off_fill.shape
    most = round(max(height, width) * MAX_OUTLINE)
    top, bottom, left, right = 0, height, 0, width
    while top < most and off_fill[top, left:right].mean() >= OUTLINE_SHARE:
        top += 1
    while height - bottom < most and off_fill[bottom - 1, left:right].mean() >= OUTLINE_SHARE:
        bottom -= 1
    while left < most and off_fill[top:bottom, left].mean() >= OUTLINE_SHARE:
        left += 1
    while width - right < most and off_fill[top:bottom, right - 1].mean() >= OUTLINE_SHARE:
        right -= 1
    return top, bottom, left, right


def ink_mask(contrast: np.ndarray) -> np.ndarray | None:
    """The ink among pixels of the given contrast to their background, or None for none."""
    strongest = int(contrast.max())
    if strongest < MIN_INK_CONTRAST:
        return None
    ink = contrast > strongest * INK_SHARE
    return ink if ink.sum() >= MIN_INK_PIXELS else None


def _mode_color(pixels: np.ndarray) -> tuple[int, int, int]:
    packed = (pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8) \
        | pixels[..., 2]
    values, counts = np.unique(packed, return_counts=True)
    mode = int(values[counts.argmax()])
    return (mode >> 16) & 255, (mode >> 8) & 255, mode & 255
