"""Finding the grid in a picture: where its cells are, how big, how many rows and columns.

A puzzle image is a lattice of square cells on a plain page: each drawn cell a filled square,
with or without an outline, the cells outside the equations left in the page's colour, and
perhaps a margin of page around it all. Nothing about the style is assumed but that:

1. **the lines**: edges between horizontally (vertically) neighbouring pixels, grouped in
   vertical (horizontal) runs. A cell's side is a straight edge as long as the cell; text
   strokes are shorter than the text is tall;
2. **the pitch and where the lines fall**: for every cell size, the long edges (at least 3/4
   of it) are folded onto one cell (their position modulo the size); the lines' place is
   their circular mean, and the size's score is the share of their length near it. Of the
   sizes that score about the best, the one whose edges lie closest to its lines wins (a
   size a pixel off drifts away from the lines cell by cell), or its largest multiple among
   them: half the true size puts a line through each cell's middle, where only short text
   edges lie, and scores as well; twice the size misses every other line;
3. **the extent**: every whole cell of that lattice inside the image (to a pixel or two), less
   outer rows and columns of one colour only (a margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_PITCH = 12  # px: smaller cells cannot hold a legible number
MIN_CELLS = 5  # a grid has at least this many rows and columns: equations run both ways,
# and each spans five cells
EDGE_THRESHOLD = 6  # max channel difference between neighbours that makes an edge
FIT_TOLERANCE = 2  # px a cell may stick out of the image (its outline drawn one px wider)
LONG_EDGE = 0.75  # a line's edge run is at least this share of the cell size
SHARE_SLACK = 0.05  # sizes whose line share is within this of the best count as tied
UNIFORM = 2  # max channel spread of a strip of one colour


class LatticeNotFound(ValueError):
    """An image in which no grid of cells can be found, with why."""


@dataclass(frozen=True)
class Lattice:
    """Cells of ``pitch`` px, ``rows`` x ``cols`` of them, the first at (``left``, ``top``)."""

    left: int
    top: int
    pitch: int
    rows: int
    cols: int

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of one cell, end exclusive."""
        x0, y0 = self.left + col * self.pitch, self.top + row * self.pitch
        return x0, y0, x0 + self.pitch, y0 + self.pitch


def channel_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The largest per-channel absolute difference of two signed (int16) colour arrays."""
    difference = np.abs(a - b)
    return np.maximum(np.maximum(difference[..., 0], difference[..., 1]), difference[..., 2])


def find_lattice(pixels: np.ndarray) -> Lattice:
    """The grid's lattice in an RGB ``(height, width, 3)`` uint8 image."""
    height, width = pixels.shape[:2]
    if pixels.ndim != 3 or min(height, width) < MIN_CELLS * MIN_PITCH:
        raise LatticeNotFound(f"an image of shape {pixels.shape} is too small to hold a grid")
    signed = pixels.astype(np.int16)
    across = _edge_runs(channel_distance(signed[:, 1:], signed[:, :-1]) > EDGE_THRESHOLD)
    down = _edge_runs((channel_distance(signed[1:], signed[:-1]) > EDGE_THRESHOLD).T)
    scored = []
    for pitch in range(MIN_PITCH, min(height, width) // MIN_CELLS + 1):
        left, share_x, spread_x = _lines(across, pitch)
        top, share_y, spread_y = _lines(down, pitch)
        scored.append(((share_x + share_y) / 2, (spread_x + spread_y) / 2, pitch, left, top))
    best = max((entry[0] for entry in scored), default=0.0)
    if best <= 0:
        raise LatticeNotFound("no straight lines in the image: no grid of cells in it")
    tied = [entry for entry in scored if entry[0] >= best - SHARE_SLACK]
    _, _, pitch, left, top = min(tied, key=lambda entry: entry[1])  # a size 1 px off drifts
    for _, _, multiple, multiple_left, multiple_top in tied:  # half the size ties the size
        if multiple % pitch == 0 and multiple > pitch:
            pitch, left, top = multiple, multiple_left, multiple_top
    left, top = _first_whole(left, pitch), _first_whole(top, pitch)
    return _trim_margins(pixels, Lattice(left, top, pitch,
                                         _count(top, pitch, height), _count(left, pitch, width)))


def _first_whole(start: int, pitch: int) -> int:
    """Where the first whole cell begins, from where the lines fall (at or after -pitch/2):
    a cell sticking out of the image by a pixel or two counts from 0."""
    return max(0, start) if start >= -FIT_TOLERANCE else start + pitch


def _count(start: int, pitch: int, extent: int) -> int:
    """Whole cells from ``start`` that fit in ``extent`` px (each may stick out a little)."""
    return (extent - start + FIT_TOLERANCE) // pitch


def _lines(runs: tuple[np.ndarray, np.ndarray], pitch: int) -> tuple[int, float, float]:
    """Where the lattice lines of ``pitch`` fall (the first at or after -pitch/2), the share
    of the long edge length near them, and its mean distance from them (px)."""
    positions, lengths = runs
    long = lengths >= pitch * LONG_EDGE
    weights = lengths[long].astype(np.float64)
    total = weights.sum()
    if not total:
        return 0, 0.0, 0.0
    # An edge index i lies between pixels i and i + 1; an outline's two edges lie either side
    # of its line.
    offsets = (positions[long] + 0.5) % pitch
    angles = offsets * (2 * math.pi / pitch)
    phase = math.atan2((weights * np.sin(angles)).sum(), (weights * np.cos(angles)).sum())
    start = round(phase * pitch / (2 * math.pi))
    distance = np.abs((offsets - start + pitch / 2) % pitch - pitch / 2)
    near = distance <= max(2, pitch // 12)
    near_weight = weights[near].sum()
    spread = float((weights[near] * distance[near]).sum() / near_weight) if near_weight else 0.0
    return start, float(near_weight / total), spread


def _trim_margins(pixels: np.ndarray, lattice: Lattice) -> Lattice:
    """The lattice less its outer rows and columns of cells that are one colour throughout."""
    left, top, pitch, rows, cols = (lattice.left, lattice.top, lattice.pitch, lattice.rows,
                                    lattice.cols)

    def plain(y0: int, y1: int, x0: int, x1: int) -> bool:
        strip = pixels[max(0, y0):y1, max(0, x0):x1].reshape(-1, pixels.shape[2])
        return bool((strip.max(axis=0).astype(int) - strip.min(axis=0) <= UNIFORM).all())

    while rows > 1 and plain(top, top + pitch, left, left + cols * pitch):
        top, rows = top + pitch, rows - 1
    while rows > 1 and plain(top + (rows - 1) * pitch, top + rows * pitch, left,
                             left + cols * pitch):
        rows -= 1
    while cols > 1 and plain(top, top + rows * pitch, left, left + pitch):
        left, cols = left + pitch, cols - 1
    while cols > 1 and plain(top, top + rows * pitch, left + (cols - 1) * pitch,
                             left + cols * pitch):
        cols -= 1
    if rows < MIN_CELLS or cols < MIN_CELLS:
        raise LatticeNotFound(f"the cells found ({rows} x {cols} of {pitch} px) are too few "
                              "to be a grid")
    return Lattice(left, top, pitch, rows, cols)


def _edge_runs(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(position, length)`` of every run of edge pixels along axis 0 of ``edges``: for the
    edges between horizontal neighbours, vertical runs, positioned by column."""
    padded = np.zeros((edges.shape[0] + 2, edges.shape[1]), dtype=np.int8)
    padded[1:-1] = edges
    change = np.diff(padded, axis=0).T  # column-major, so runs come out column by column
    starts, ends = np.nonzero(change == 1), np.nonzero(change == -1)
    return starts[0], ends[1] - starts[1]
