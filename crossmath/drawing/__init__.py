"""Puzzle grids to PNG images in the release's styles (Pillow only; imports neither Ray nor torch).

Styles are data (``conf/style/*.yaml``); fonts are bundled in ``fonts/`` so the same puzzle and
style give the same bytes on every machine with the same Pillow.
"""

from crossmath.drawing.painter import (
    RENDERER_VERSION,
    GridPainter,
    render_puzzle_array,
    render_puzzle_png,
)
from crossmath.drawing.style import (
    Style,
    StyleError,
    available_styles,
    load_style,
    style_from_mapping,
)

__all__ = [
    "RENDERER_VERSION",
    "GridPainter",
    "Style",
    "StyleError",
    "available_styles",
    "load_style",
    "render_puzzle_array",
    "render_puzzle_png",
    "style_from_mapping",
]
