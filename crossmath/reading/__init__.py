"""Reading a puzzle picture back into its grid (numpy and Pillow only; no Ray, no torch).

``read_grid(pixels, read_numbers)`` finds the lattice of cells (``lattice``), looks at each
cell's fill and ink (``cells``), reads operators and ``=`` by template matching against the
styles' own glyphs (``glyphs``) and numbers with the OCR engine the caller passes, and tells
blanks from cells outside the puzzle (``grid_reading``). See docs/reader.md.
"""

from crossmath.reading.grid_reading import (
    DIGITS,
    READING_VERSION,
    UNREAD,
    GridReading,
    NumberReader,
    read_grid,
)
from crossmath.reading.lattice import Lattice, LatticeNotFound, find_lattice

__all__ = [
    "DIGITS",
    "READING_VERSION",
    "UNREAD",
    "GridReading",
    "Lattice",
    "LatticeNotFound",
    "NumberReader",
    "find_lattice",
    "read_grid",
]
