"""Reading a dataset's published files: from a local path, or from the Hugging Face Hub.

The transfer datasets are published as parquet files in the layout the Hub's ``datasets``
library writes: one row per question, images as the ``Image`` feature, a struct of ``bytes``
(the encoded file) and ``path`` (its original name); the Hub's own conversion
(``refs/convert/parquet``: ``<config>/<split>/0000.parquet``) has the same columns. We read
those files with pyarrow directly, so no ``datasets`` install is needed, and check what we
read. A file that is not parquet or lacks a column stops the task (``TaskDataError``); a row
that cannot be made an item (a missing value, an image that does not decode) is
``UnreadableItem``, naming the file, the row and the column, and the task skips it.

Nothing is shipped and nothing is downloaded unless a loader is called without a path.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from crossmath.core.errors import UserError


class TaskDataError(UserError, ValueError):
    """A dataset file that cannot be used as it is, naming the file and what is wrong where."""


class UnreadableItem(TaskDataError):
    """One row that cannot be made an item (a null value, an image that does not decode, an
    answer that is none of the options): the item is skipped, the rest of the file is read."""


@dataclass(frozen=True)
class ParquetRow:
    """One row of a published file, with where it came from for error messages.

    ``number`` counts the file's rows from 1, whatever filter the loader applied.
    """

    source: Path
    number: int
    values: dict[str, Any]

    def error(self, reason: str, column: str | None = None) -> UnreadableItem:
        where = f"{self.source}: row {self.number}"
        if column is not None:
            where += f", column {column!r}"
        return UnreadableItem(f"{where}: {reason}")

    def text(self, column: str) -> str:
        """A required string value (may be empty, never null)."""
        value = self.values.get(column)
        if not isinstance(value, str):
            raise self.error(f"expected a string, found {_describe(value)}", column)
        return value

    def field(self, column: str, name: str) -> str:
        """A required string inside a struct column (``metadata.subject``)."""
        struct = self.values.get(column)
        if not isinstance(struct, dict) or not isinstance(struct.get(name), str):
            raise self.error(f"expected a struct with a string {name!r}, found "
                             f"{_describe(struct)}", column)
        return struct[name]

    def image(self, column: str) -> bytes | None:
        """The encoded image of an ``Image`` column, checked to decode; None where null.

        The Hub embeds the bytes; a struct that names only a ``path`` is read from that path
        (absolute, or relative to the parquet file's folder).
        """
        cell = self.values.get(column)
        if cell is None:
            return None
        if not isinstance(cell, dict):
            raise self.error(f"expected an image struct {{bytes, path}}, found {_describe(cell)}",
                             column)
        data = cell.get("bytes")
        if data is None and cell.get("path"):
            data = self._image_file(cell["path"], column)
        if data is None:
            return None
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise self.error(f"the image does not decode ({error})", column) from None
        return bytes(data)

    def _image_file(self, name: str, column: str) -> bytes:
        path = Path(name)
        if not path.is_absolute():
            path = self.source.parent / path
        if not path.is_file():
            raise self.error(f"the image has no bytes and its path {name!r} is not a file",
                             column)
        return path.read_bytes()


def read_rows(path: Path, columns: Sequence[str], *, optional: Sequence[str] = (),
              where: tuple[str, str] | None = None) -> Iterator[ParquetRow]:
    """The rows of one parquet file with ``columns`` (and ``optional`` ones where present);
    ``where=(column, value)`` keeps the rows whose column equals value, filtered before any
    image is turned into Python.

    Raises ``TaskDataError`` naming the file when it is not parquet or lacks a column.
    """
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise TaskDataError(f"{path}: not a readable parquet file ({error})") from None
    names = set(parquet.schema_arrow.names)
    required = list(dict.fromkeys([*columns, *([where[0]] if where else [])]))
    missing = [column for column in required if column not in names]
    if missing:
        raise TaskDataError(f"{path}: missing column(s) {', '.join(map(repr, missing))} "
                            f"(the file has {', '.join(sorted(names))})")
    kept = [*columns, *(column for column in optional if column in names)]
    table = parquet.read(columns=list(dict.fromkeys([*required, *kept])))
    numbers = pa.array(range(1, table.num_rows + 1))
    if where is not None:
        keep = pc.equal(table[where[0]], where[1])
        table, numbers = table.filter(keep), numbers.filter(keep)
    for number, values in zip(numbers.to_pylist(), table.select(kept).to_pylist()):
        yield ParquetRow(path, number, values)


def local_files(task: str, root: Path, patterns: Sequence[str]) -> list[Path]:
    """``root`` itself if it is a file, else every file under it matching the first of
    ``patterns`` that matches any (a dataset's own layout before the Hub's conversion)."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise TaskDataError(f"task {task}: {root} does not exist")
    for pattern in patterns:
        files = sorted(root.rglob(pattern))
        if files:
            return files
    raise TaskDataError(f"task {task}: no file matching {' or '.join(map(repr, patterns))} "
                        f"under {root}")


def download_files(task: str, repo_id: str, patterns: Sequence[str], path_hint: str,
                   cache_dir: str | None = None) -> Path:
    """The files of a Hub dataset matching ``patterns``, fetched once into the Hub cache.

    Any failure (offline, no access, Hub down) becomes one ``TaskDataError`` that names the
    task and says how to pass a local copy instead.
    """
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id=repo_id, repo_type="dataset",
                                   allow_patterns=list(patterns), cache_dir=cache_dir)
    except Exception as error:  # offline, hub down, no access: all end the same way
        raise TaskDataError(
            f"task {task}: could not download {repo_id} ({', '.join(patterns)}) from the "
            f"Hugging Face Hub: {type(error).__name__}: {error}\n"
            f"Offline? Download it elsewhere and pass its local copy: task.path={path_hint}"
        ) from None
    return Path(folder)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
