"""Run outputs on any filesystem pyarrow understands (a local or shared path, file://, s3://, gs://).

Each inference batch is written as its own parquet shard the moment it is answered, under a
temporary name and then renamed, so a crash never leaves a half-written shard and never loses
a finished batch. A prediction whose request failed (``error`` set) is saved too, with the
number of its ``attempt``; a rerun tries it again, and the new attempt is saved beside the
old one. Reading keeps, for each request, its latest attempt (and of two copies of the same
attempt, which a batch retried by Ray after its shard was written leaves, an answered one),
so the predictions hold every request exactly once.

A store's ``root`` is always absolute (a relative path is resolved once, by the process that
opens the store), so the workers that receive it write where the driver reads, whatever
their own working directory.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

SHARD_DIR = "shards"

PREDICTION_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("puzzle_id", pa.string()),
        ("name", pa.string()),
        ("difficulty", pa.string()),
        ("modality", pa.string()),
        ("style", pa.string()),
        ("sample", pa.int32()),
        ("prompt_id", pa.string()),
        ("model", pa.string()),
        ("output", pa.string()),
        ("pred", pa.list_(pa.string())),
        ("n_prompt_tokens", pa.int64()),
        ("n_output_tokens", pa.int64()),
        ("latency_s", pa.float64()),
        ("error", pa.string()),
        ("finish_reason", pa.string()),
        ("attempt", pa.int32()),
    ]
)


@dataclass(frozen=True)
class SavedAttempt:
    """The latest saved attempt at one request, and whether it failed."""

    attempt: int
    failed: bool


class PredictionStore:
    """The shard folder of one evaluation run (``<root>/shards``)."""

    def __init__(self, root: str) -> None:
        self.root = _as_uri(root.rstrip("/"))
        self.fs, self.path = pafs.FileSystem.from_uri(self.root)
        self.shard_path = f"{self.path}/{SHARD_DIR}"
        self.fs.create_dir(self.shard_path, recursive=True)

    def write_shard(self, rows: list[dict], prefix: str = "") -> str:
        """Write one batch of predictions atomically; returns the shard's path. ``prefix``
        starts the shard's file name (``saved_request_ids`` can then read only those)."""
        table = pa.Table.from_pylist(rows, schema=PREDICTION_SCHEMA)
        name = f"{prefix}{uuid.uuid4().hex}.parquet"
        final = f"{self.shard_path}/{name}"
        temporary = f"{self.shard_path}/.{name}.tmp"
        with self.fs.open_output_stream(temporary) as stream:
            pq.write_table(table, stream)
        self.fs.move(temporary, final)
        return final

    def _shard_files(self, prefix: str = "") -> list[str]:
        selector = pafs.FileSelector(self.shard_path, allow_not_found=True)
        return sorted(
            info.path for info in self.fs.get_file_info(selector)
            if info.path.endswith(".parquet") and not info.base_name.startswith(".")
            and info.base_name.startswith(prefix)
        )

    def saved_request_ids(self, prefix: str = "") -> set[str]:
        """Every request with a saved prediction, answered or failed (in the shards whose
        names start with ``prefix``)."""
        ids: set[str] = set()
        for path in self._shard_files(prefix):
            table = pq.read_table(path, columns=["request_id"], filesystem=self.fs)
            ids.update(table.column("request_id").to_pylist())
        return ids

    def latest_attempts(self) -> dict[str, SavedAttempt]:
        """Each saved request's latest attempt (the rule of ``read``), without the outputs."""
        table = self._latest(["request_id", "attempt", "error"])
        return {rid: SavedAttempt(attempt, error is not None) for rid, attempt, error in zip(
            *(table.column(name).to_pylist() for name in ("request_id", "attempt", "error")))}

    def read(self) -> pa.Table:
        """Every request's latest attempt once, in request_id order (shards in any order give
        the same table)."""
        return self._latest(PREDICTION_SCHEMA.names)

    def _latest(self, columns: list[str]) -> pa.Table:
        schema = pa.schema([PREDICTION_SCHEMA.field(name) for name in columns])
        files = self._shard_files()
        if not files:
            return schema.empty_table()
        table = pa.concat_tables([pq.read_table(path, filesystem=self.fs, schema=schema)
                                  for path in files])
        failed = pc.is_valid(table.column("error"))
        order = pc.sort_indices(
            table.append_column("_failed", failed),
            sort_keys=[("request_id", "ascending"), ("attempt", "descending"),
                       ("_failed", "ascending")])
        table = table.take(order)
        ids = table.column("request_id").to_pylist()
        keep = [i for i, rid in enumerate(ids) if i == 0 or rid != ids[i - 1]]
        return table.take(pa.array(keep, type=pa.int64()))


def _as_uri(root: str) -> str:
    """A plain path becomes an absolute local URI; a URI with a scheme is left alone."""
    if "://" in root:
        return root
    return Path(root).expanduser().resolve().as_uri()


def local_path(location: str) -> Path | None:
    """The local folder a plain path or ``file://`` URI names; None for other storage."""
    uri = _as_uri(location)
    if not uri.startswith("file://"):
        return None
    _, path = pafs.FileSystem.from_uri(uri)
    return Path(path)


def publish_files(files: list[Path], location: str) -> None:
    """Copy local files into the folder ``location`` (a path or URI), each by its own name."""
    fs, folder = pafs.FileSystem.from_uri(_as_uri(location.rstrip("/")))
    fs.create_dir(folder, recursive=True)
    for file in files:
        pafs.copy_files(str(file), f"{folder}/{file.name}", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=fs)


def read_text(uri: str) -> str | None:
    """The text of the file at ``uri`` (a path or URI); None when there is none."""
    fs, path = pafs.FileSystem.from_uri(_as_uri(uri))
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")


def write_text(uri: str, text: str) -> None:
    """Replace the file at ``uri`` (a path or URI) with ``text``, whole or not at all."""
    fs, path = pafs.FileSystem.from_uri(_as_uri(uri))
    parent, name = path.rsplit("/", 1)
    fs.create_dir(parent, recursive=True)
    temporary = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(temporary) as stream:
        stream.write(text.encode("utf-8"))
    fs.move(temporary, path)


def write_table(table: pa.Table, uri: str) -> None:
    fs, path = pafs.FileSystem.from_uri(_as_uri(uri))
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as stream:
        pq.write_table(table, stream)
