"""Dataset files written for tests in the layout the Hugging Face Hub publishes: parquet tables
whose images are the ``Image`` feature, a struct of the encoded ``bytes`` and a ``path``."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def png(shade: int) -> bytes:
    """A small PNG whose bytes differ for every shade in 0..255."""
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (shade, 255 - shade, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> Path:
    """``rows`` as one parquet file at ``path`` (its folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def numbered_png(number: int) -> bytes:
    """A tiny PNG whose bytes differ for every number in 0..2**24-1 (a stand-in image)."""
    buffer = io.BytesIO()
    colour = (number & 255, (number >> 8) & 255, (number >> 16) & 255)
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()
