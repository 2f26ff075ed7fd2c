"""The straightforward renderer: one Pillow drawing per cell, straight onto one image.

It is what ``crossmath.drawing.painter`` must equal pixel for pixel (tests check it) and what
``bench/render.py`` measures the tiled renderer against. Not used for real work: it redraws
every cell's glyphs for every image, then copies Pillow's image out into RGB rows to encode.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from crossmath.drawing.png import encode_rgb_png
from crossmath.drawing.style import Style
from crossmath.puzzle.grid import BLANK, EMPTY, Grid, Position


def draw_reference_image(grid: Grid, style: Style, font: ImageFont.FreeTypeFont,
                         values: dict[Position, int] | None = None) -> Image.Image:
    """The grid drawn cell by cell, row-major, straight onto one Pillow image."""
    size = style.cell_size
    image = Image.new("RGB", (grid.n_cols * size, grid.n_rows * size), style.page_color)
    draw = ImageDraw.Draw(image)
    for r, c in grid.positions():
        written = grid.written((r, c))
        if written == EMPTY:
            continue
        background = style.cell_color(written)
        if written == BLANK:
            text = str(values[(r, c)]) if values and (r, c) in values else ""
        else:
            text = written
        x, y = c * size, r * size
        draw.rectangle((x, y, x + size, y + size), fill=background,
                       outline=style.border_color if style.border_width else None,
                       width=style.border_width)
        if text:
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            dx, dy = style.text_offset
            draw.text((x + (size - (right - left)) / 2 - left + dx,
                       y + (size - (bottom - top)) / 2 - top + dy),
                      text, font=font, fill=style.text_color)
    return image


def render_reference_png(grid: Grid, style: Style, font: ImageFont.FreeTypeFont,
                         values: dict[Position, int] | None = None) -> bytes:
    """The reference image written with the tiled renderer's PNG settings (same bytes)."""
    return encode_rgb_png(np.asarray(draw_reference_image(grid, style, font, values)))


def reference_font(style: Style) -> ImageFont.FreeTypeFont:
    """The style's font as the tiled renderer loads it (basic layout: whole-pixel advances)."""
    return ImageFont.truetype(str(style.font_path), style.font_size,
                              layout_engine=ImageFont.Layout.BASIC)
