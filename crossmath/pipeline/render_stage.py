"""The render stage: a Ray Data ``map_batches`` callable that gives each unit of a call its PNG.

It runs on CPU actors, ahead of the inference actors: while a model answers one call, the next
calls are being rendered. The actor keeps its styles, fonts and tile caches for its lifetime, so
a glyph is drawn once per actor and each image is a paste of cached tiles plus a PNG encode.
Ray itself is not imported here: the class is a plain callable Ray Data instantiates per actor.
"""

from __future__ import annotations

from typing import Mapping

import pyarrow as pa

from crossmath.drawing import Style, render_puzzle_png
from crossmath.pipeline.calls import needs_render, unit_style
from crossmath.puzzle.grid import GridFormatError, parse_markdown_grid


class RenderImages:
    """``map_batches`` callable over call rows (``calls.CALL_SCHEMA``, ``batch_format="pyarrow"``).

    Each unit of each call gets its ``images``: the one image of its grid rendered in the unit's
    style, except for text units (no image) and units that already hold theirs (the release's
    own image, read by the driver, which is the one machine sure to have the file; a transfer
    task's item).

    ``styles`` are the units' styles as resolved at the command's door (name as given ->
    ``Style``): a style's file is read on the driver, never on a worker.
    """

    def __init__(self, styles: Mapping[str, Style]) -> None:
        self._styles = dict(styles)

    def __call__(self, calls: pa.Table) -> pa.Table:
        if "units" not in calls.column_names:
            raise ValueError("render stage: batch lacks column 'units'; "
                             f"it has {calls.column_names}")
        rows = calls.to_pylist()
        for call in rows:
            for unit in call["units"]:
                if needs_render(unit):
                    unit["images"] = [self.render(unit)]
        return pa.Table.from_pylist(rows, schema=calls.schema)

    def render(self, unit: dict) -> bytes:
        """The PNG of one unit's grid in its style; a grid that cannot be read names the puzzle."""
        style = unit_style(unit, self._styles)
        try:
            grid = parse_markdown_grid(unit["grid"])
        except GridFormatError as error:
            raise error.located(source=f"puzzle {unit['name'] or unit['puzzle_id']}",
                                field="grid") from None
        return render_puzzle_png(grid, style)
