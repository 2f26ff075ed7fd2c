"""The render stage: a Ray Data ``map_batches`` callable that adds each row's PNG.

It runs on CPU actors; the actor keeps its styles, fonts and tile caches for its lifetime, so a
glyph is drawn once per actor and each image is a paste of cached tiles plus a PNG encode.
Ray itself is not imported here: the class is a plain callable Ray Data instantiates per actor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from crossmath.drawing import Style, load_style, render_puzzle_png
from crossmath.puzzle.grid import GridFormatError, parse_markdown_grid

INPUT_COLUMNS = ("grid", "style", "modality")
IMAGE_COLUMN = "image"
TEXT_MODALITY = "text"


class RenderImages:
    """``map_batches`` callable: adds an ``image`` binary column (PNG; null for text rows).

    A row with a non-empty ``image_path`` (the release's own image of that puzzle and style)
    gets that file's bytes instead of a render. Accepts ``batch_format="pyarrow"`` (returns a
    table) or ``"numpy"`` (returns a dict of arrays).
    """

    def __init__(self) -> None:
        self._styles: dict[str, Style] = {}

    def __call__(self, batch: pa.Table | dict[str, np.ndarray]) -> pa.Table | dict[str, np.ndarray]:
        columns = batch.column_names if isinstance(batch, pa.Table) else list(batch)
        missing = [name for name in INPUT_COLUMNS if name not in columns]
        if missing:
            raise ValueError(f"render stage: batch lacks column(s) {missing}; it has {columns}")
        rows = _column_lists(batch, [*INPUT_COLUMNS, "image_path"])
        images = [
            self._image(grid, style, modality, path)
            for grid, style, modality, path in zip(rows["grid"], rows["style"], rows["modality"],
                                                   rows["image_path"])
        ]
        if isinstance(batch, pa.Table):
            if IMAGE_COLUMN in batch.column_names:
                batch = batch.drop_columns([IMAGE_COLUMN])
            return batch.append_column(IMAGE_COLUMN, pa.array(images, type=pa.binary()))
        result = dict(batch)
        result[IMAGE_COLUMN] = np.array(images, dtype=object)
        return result

    def _image(self, grid: str, style: str, modality: str, image_path: str | None) -> bytes | None:
        if modality == TEXT_MODALITY:
            return None
        if image_path:
            return Path(image_path).read_bytes()
        if style not in self._styles:
            self._styles[style] = load_style(style)
        try:
            parsed = parse_markdown_grid(grid)
        except GridFormatError as error:
            raise error.located(field="grid") from None
        return render_puzzle_png(parsed, self._styles[style])


def _column_lists(batch: pa.Table | dict[str, np.ndarray],
                  names: list[str]) -> dict[str, list[Any]]:
    """Named columns as Python lists; an absent optional column reads as all None."""
    length = batch.num_rows if isinstance(batch, pa.Table) else len(next(iter(batch.values())))
    present = batch.column_names if isinstance(batch, pa.Table) else list(batch)
    lists = {}
    for name in names:
        if name not in present:
            lists[name] = [None] * length
        elif isinstance(batch, pa.Table):
            lists[name] = batch.column(name).to_pylist()
        else:
            lists[name] = list(batch[name])
    return lists
