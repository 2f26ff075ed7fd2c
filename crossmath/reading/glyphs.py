"""Operators and ``=`` by template matching against the glyphs of the styles' own fonts.

An operator cell holds one of five glyphs (``+ - × ÷ =``). The templates are those glyphs as
the shipped styles (``conf/style``) draw them: each style's font at its own size, with the
basic layout the painter uses (small sizes are hinted differently: at 13 px, ``÷``'s dots
touch its bar), and each font once more at a large size for styles of other sizes. Both a
template and a cell's ink are brought to the same small square: cropped to the ink, centred
in a square as wide as its longer side (so that proportions stay: ``-`` stays a thin bar,
``=`` two), scaled down and blurred a little. The cell reads as the glyph whose template
correlates best with it; the correlation is the match's score. The reader is not told the
style of a picture, so every style's templates compete.

Why templates rather than the OCR engine: operators are single, fixed shapes in a known font,
exactly what template matching is good at, while a text recogniser trained on lines of prose
misses a lone ``-`` (docs/reader.md has the measurements).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from crossmath.drawing.style import FONT_DIR, available_styles, load_style
from crossmath.puzzle.grid import EQUALS, OPERATORS
from crossmath.reading.cells import ink_mask

SYMBOLS: tuple[str, ...] = (*OPERATORS, EQUALS)
SIDE = 20  # px of the square both templates and cells are compared in
LARGE_FONT_SIZE = 64
BLUR_RADIUS = 0.8  # px at SIDE: forgives a stroke one pixel thicker or offset


@dataclass(frozen=True)
class GlyphMatch:
    """The best-matching symbol and its score (a correlation, at most 1)."""

    symbol: str
    score: float


def normalized_shape(ink: np.ndarray) -> np.ndarray:
    """A boolean ink mask as a flat, zero-mean, unit-length vector of its SIDE x SIDE square."""
    ys, xs = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    tight = ink[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
    height, width = tight.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = tight * 255
    image = Image.fromarray(square).resize((SIDE, SIDE), Image.Resampling.BOX)
    vector = np.asarray(image.filter(ImageFilter.GaussianBlur(BLUR_RADIUS)),
                        dtype=np.float32).ravel()
    vector -= vector.mean()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def template_fonts() -> list[tuple[str, int]]:
    """(font file, size) of every template set: each shipped style's font at its size, and
    each bundled font large."""
    styles = {(style.font_file, style.font_size) for style in map(load_style, available_styles())}
    large = {(path.name, LARGE_FONT_SIZE) for path in FONT_DIR.glob("*.[ot]tf")}
    return sorted(styles | large)


@lru_cache(maxsize=1)
def templates() -> tuple[tuple[str, ...], np.ndarray]:
    """Every (symbol, font and size) template: the symbols, and their vectors as rows."""
    names, vectors = [], []
    for font_file, size in template_fonts():
        font = ImageFont.truetype(str(FONT_DIR / font_file), size,
                                  layout_engine=ImageFont.Layout.BASIC)
        for symbol in SYMBOLS:
            canvas = Image.new("L", (3 * size, 2 * size), 0)
            ImageDraw.Draw(canvas).text((size // 2, size // 4), symbol, font=font, fill=255)
            ink = ink_mask(np.asarray(canvas))
            if ink is not None:
                names.append(symbol)
                vectors.append(normalized_shape(ink))
    return tuple(names), np.stack(vectors)


def match_symbol(ink: np.ndarray) -> GlyphMatch:
    """The symbol whose template (in any font) correlates best with a cell's ink mask."""
    names, vectors = templates()
    scores = vectors @ normalized_shape(ink)
    best = int(scores.argmax())
    return GlyphMatch(names[best], float(scores[best]))
