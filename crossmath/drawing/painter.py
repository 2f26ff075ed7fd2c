"""Draw a grid as a PNG: one pre-rendered tile per (cell colour, text), pasted cell by cell.

The release draws each non-empty cell, row by row, as a filled square ``cell_size + 1`` pixels
wide (both corners inclusive) with its outline inside, then the cell's text centred on it; a
cell drawn later covers the shared last row and column of the one before. Drawing that square
once per distinct (background, text) pair and pasting it in the same order gives the same
pixels for a fraction of the work; the tiles are cached per style, so a process pays for each
glyph run once.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from crossmath.drawing.png import ScanlineCanvas
from crossmath.drawing.style import Color, Style
from crossmath.puzzle.grid import BLANK, EMPTY, Grid, Position, is_number_token

# The version of the images this renderer outputs: bumped whenever the same grid, style and
# values give different PNG bytes, so identities that include it never mix old and new images.
RENDERER_VERSION = 1
TEXT_PADDING = 2  # px kept free between text and border when a long number must shrink to fit
_TILE_CACHE_SIZE = 4096  # tiles per style: numbers up to a few thousand stay cached
_local = threading.local()  # each thread paints and encodes in its own scanline buffer


class GridPainter:
    """Renders grids of one style; holds the style's font and its tile cache."""

    def __init__(self, style: Style) -> None:
        self.style = style
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self._tile = lru_cache(maxsize=_TILE_CACHE_SIZE)(self._draw_tile)
        self._page: np.ndarray | None = None

    def paint(self, grid: Grid, values: dict[Position, int] | None = None) -> np.ndarray:
        """The grid as a new ``(height, width, 3)`` uint8 RGB array; blanks show ``values``."""
        size = self.style.cell_size
        canvas = np.empty((grid.n_rows * size, grid.n_cols * size, 3), dtype=np.uint8)
        self.paint_into(canvas, grid, values)
        return canvas

    def png(self, grid: Grid, values: dict[Position, int] | None = None) -> bytes:
        """The grid as PNG bytes, painted straight into this thread's reusable scanlines."""
        if not hasattr(_local, "canvas"):
            _local.canvas = ScanlineCanvas()
        size = self.style.cell_size
        self.paint_into(_local.canvas.pixels(grid.n_rows * size, grid.n_cols * size), grid, values)
        return _local.canvas.encode()

    def paint_into(self, canvas: np.ndarray, grid: Grid,
                   values: dict[Position, int] | None = None) -> None:
        """Paint the grid onto ``canvas``, an ``(height, width, 3)`` array of the grid's size."""
        size = self.style.cell_size
        height, width = canvas.shape[:2]
        canvas[:] = self._page_row(width)  # a whole row broadcasts far faster than one colour
        for r, row in enumerate(grid.cells):
            y = r * size
            for c, token in enumerate(row):
                if token == EMPTY:
                    continue
                background, text = self._cell_look(token, (r, c), values)
                tile = self._tile(background, text)
                x = c * size
                canvas[y:y + size + 1, x:x + size + 1] = tile[:height - y, :width - x]

    def _page_row(self, width: int) -> np.ndarray:
        if self._page is None or len(self._page) < width:
            self._page = np.tile(np.array(self.style.page_color, dtype=np.uint8), (width, 1))
        return self._page[:width]

    def _cell_look(self, token: str, position: Position,
                   values: dict[Position, int] | None) -> tuple[Color, str]:
        style = self.style
        if token == BLANK:
            value = values.get(position) if values else None
            return style.blank_color, "" if value is None else str(value)
        if is_number_token(token):
            return style.number_color, token
        return style.operator_color, token

    def _draw_tile(self, background: Color, text: str) -> np.ndarray:
        style = self.style
        size = style.cell_size
        image = Image.new("RGB", (size + 1, size + 1), background)
        draw = ImageDraw.Draw(image)
        if style.border_width:
            draw.rectangle((0, 0, size, size), outline=style.border_color, width=style.border_width)
        if text:
            font = self._font_fitting(text)
            left, top, right, bottom = font.getbbox(text)
            dx, dy = style.text_offset
            # As the release does: the advance box is centred across, the ink box down.
            origin = ((size - (right - left)) / 2 - left + dx,
                      (size - (bottom - top)) / 2 - top + dy)
            draw.text(origin, text, font=font, fill=style.text_color)
        tile = np.asarray(image)
        tile.setflags(write=False)
        return tile

    def _font_fitting(self, text: str) -> ImageFont.FreeTypeFont:
        """The style's font, or a smaller size of it when ``text`` would not fit the cell."""
        room = self.style.cell_size - 2 * (self.style.border_width + TEXT_PADDING)
        size = self.style.font_size
        font = self._font(size)
        while size > 4 and font.getlength(text) > room:
            size -= 1
            font = self._font(size)
        return font

    def _font(self, size: int) -> ImageFont.FreeTypeFont:
        if size not in self._fonts:
            # The basic layout places glyphs at whole-pixel advances, as the release's images
            # show, and does not depend on libraqm being present.
            self._fonts[size] = ImageFont.truetype(
                str(self.style.font_path), size, layout_engine=ImageFont.Layout.BASIC
            )
        return self._fonts[size]


@lru_cache(maxsize=32)
def painter_for(style: Style) -> GridPainter:
    """One painter (font and tile cache) per style per process."""
    return GridPainter(style)


def render_puzzle_array(grid: Grid, style: Style,
                        values: dict[Position, int] | None = None) -> np.ndarray:
    """The puzzle image as an RGB array: blank, or solved when ``values`` fill the blanks."""
    return painter_for(style).paint(grid, values)


def render_puzzle_png(grid: Grid, style: Style, values: dict[Position, int] | None = None) -> bytes:
    """The puzzle image as PNG bytes: blank, or solved when ``values`` fill the blanks."""
    return painter_for(style).png(grid, values)
