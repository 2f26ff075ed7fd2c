"""Image styles as data: one YAML file in ``conf/style/`` per style, read into a frozen ``Style``.

The shipped styles are read through the installed package ``crossmath.conf`` (the repository's
``conf/`` folder), so they are found however crossmath was installed and from any folder.

A style says how a grid looks (colours, border, font, cell size) and where the release keeps
its files (``release_folder`` and ``release_tag``, see ``crossmath.puzzle.records.ReleaseLayout``).
Adding a style is adding a YAML file; no code changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from crossmath.core.errors import UserError
from crossmath.puzzle.grid import BLANK, EMPTY, EQUALS, OPERATORS
from crossmath.puzzle.records import ReleaseLayout

Color = tuple[int, int, int]

STYLE_DIR = Path(str(resources.files("crossmath.conf") / "style"))
FONT_DIR = Path(__file__).resolve().parent / "fonts"

_HEX_COLOR = re.compile(r"#([0-9a-fA-F]{6})")
OPERATOR_TEXTS = frozenset((*OPERATORS, EQUALS))  # what the release paints in operator colour


class StyleError(UserError, ValueError):
    """A style that cannot be found or read, naming the file and field, and the known styles."""


@dataclass(frozen=True)
class Style:
    """Everything a renderer needs to draw a grid, plus the release's file layout.

    ``text_offset`` moves the text centre from the cell centre (``cell_size // 2``) in whole
    pixels, right and down; with a border, each cell's outline lies inside its square, the
    right and bottom edges shared with the next cell (as the release draws them).
    """

    name: str
    release_folder: str
    release_tag: str
    cell_size: int
    page_color: Color
    number_color: Color
    operator_color: Color
    blank_color: Color
    border_color: Color
    border_width: int
    text_color: Color
    font_file: str
    font_size: int
    text_offset: tuple[int, int] = (0, 0)

    @property
    def layout(self) -> ReleaseLayout:
        return ReleaseLayout(self.release_folder, self.release_tag)

    @property
    def font_path(self) -> Path:
        """The font file, resolved inside the bundled fonts folder."""
        return FONT_DIR / self.font_file

    def cell_color(self, text: str) -> Color:
        """The background of a cell that shows ``text`` (its spelling in the source file).

        The release colours a cell by the text it shows, not by what the text means: ``+ - × ÷
        =`` get the operator colour and any other text the number colour, so the two cells
        where it wrote the multiplication sign as the letter ``x`` are number-coloured in all
        four styles (read off its images of puzzle 43).
        """
        if text == EMPTY:
            return self.page_color
        if text == BLANK:
            return self.blank_color
        return self.operator_color if text in OPERATOR_TEXTS else self.number_color


_COLOR_FIELDS = ("page_color", "number_color", "operator_color", "blank_color", "border_color",
                 "text_color")
_REQUIRED = tuple(f.name for f in fields(Style) if f.name != "text_offset")


def available_styles() -> list[str]:
    """The names of the styles shipped in ``conf/style/``, sorted."""
    return sorted(path.stem for path in STYLE_DIR.glob("*.yaml"))


def load_style(name_or_path: str | Path) -> Style:
    """A style by name (``conf/style/<name>.yaml``) or by the path of a YAML file.

    An unknown name raises ``StyleError`` listing the available styles; a broken file raises
    ``StyleError`` naming the file and the field.
    """
    text = str(name_or_path)
    path = Path(text)
    by_name = not (text.endswith((".yaml", ".yml")) or path.is_file())
    if by_name:
        path = STYLE_DIR / f"{text}.yaml"
        if not path.is_file():
            raise StyleError(
                f"unknown style {text!r}; available styles: {', '.join(available_styles())} "
                f"(or the path of a style YAML file)"
            )
    elif not path.is_file():
        raise StyleError(f"style file {path} does not exist; available styles: "
                         f"{', '.join(available_styles())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise StyleError(f"{path}: not valid YAML ({error})") from None
    style = style_from_mapping(data, source=str(path))
    if by_name and style.name != text:
        raise StyleError(f"{path}: field 'name' is {style.name!r}, expected {text!r} "
                         "(a style's name is its file name)")
    return style


def style_from_mapping(data: Any, *, source: str = "<style>") -> Style:
    """Validate a style's fields (as read from YAML or a Hydra config) and build the ``Style``."""
    if not isinstance(data, Mapping):
        raise StyleError(f"{source}: a style must be a mapping of fields, "
                         f"got {type(data).__name__}")
    known = {f.name for f in fields(Style)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise StyleError(f"{source}: unknown field(s) {', '.join(map(repr, unknown))}; "
                         f"known fields: {', '.join(sorted(known))}")
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise StyleError(f"{source}: missing field(s) {', '.join(map(repr, missing))}")

    def fail(field: str, reason: str) -> StyleError:
        return StyleError(f"{source}: field {field!r}: {reason}")

    values: dict[str, Any] = {}
    for field in ("name", "release_folder", "release_tag", "font_file"):
        if not isinstance(data[field], str) or not data[field]:
            raise fail(field, f"expected a non-empty string, got {data[field]!r}")
        values[field] = data[field]
    for field, low in (("cell_size", 8), ("border_width", 0), ("font_size", 4)):
        value = data[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise fail(field, f"expected an integer >= {low}, got {value!r}")
        values[field] = value
    for field in _COLOR_FIELDS:
        color = _parse_color(data[field])
        if color is None:
            raise fail(field, f"expected [r, g, b] with integers 0..255 or '#rrggbb', "
                              f"got {data[field]!r}")
        values[field] = color
    offset = data.get("text_offset", (0, 0))
    if (not isinstance(offset, (list, tuple)) or len(offset) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in offset)):
        raise fail("text_offset", f"expected two integers [dx, dy], got {offset!r}")
    values["text_offset"] = (offset[0], offset[1])
    if 2 * values["border_width"] >= values["cell_size"]:
        raise fail("border_width", f"{values['border_width']} leaves no room inside a "
                                   f"{values['cell_size']} px cell")
    style = Style(**values)
    if Path(style.font_file).name != style.font_file or not style.font_path.is_file():
        bundled = sorted(p.name for p in FONT_DIR.glob("*.[ot]tf"))
        raise fail("font_file", f"{style.font_file!r} is not a bundled font; bundled fonts: "
                                f"{', '.join(bundled)}")
    return style


def _parse_color(value: Any) -> Color | None:
    """``[r, g, b]`` with 0..255 integers, or ``"#rrggbb"``; None for anything else."""
    if isinstance(value, str):
        match = _HEX_COLOR.fullmatch(value.strip())
        if match:
            digits = match.group(1)
            return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    elif (isinstance(value, (list, tuple)) and len(value) == 3
          and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        return value[0], value[1], value[2]
    return None
