"""Run outputs on any filesystem pyarrow understands (a local or shared path, file://, s3://, gs://).

Each inference batch is written as its own parquet shard the moment it is answered, under a
temporary name and then renamed, so a crash never leaves a half-written shard and never loses
a finished batch. A rerun reads the shards' ``request_id`` column to skip what is done. A
batch that Ray retried after its shard was written appears twice; reading keeps the first
copy of each request, so the predictions hold every request exactly once.

A store's ``root`` is always absolute (a relative path is resolved once, by the process that
opens the store), so the workers that receive it write where the driver reads, whatever
their own working directory.
"""

from __future__ import annotations

import uuid
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
    ]
)


class PredictionStore:
    """The shard folder of one evaluation run (``<root>/shards``)."""

    def __init__(self, root: str) -> None:
        self.root = _as_uri(root.rstrip("/"))
        self.fs, self.path = pafs.FileSystem.from_uri(self.root)
        self.shard_path = f"{self.path}/{SHARD_DIR}"
        self.fs.create_dir(self.shard_path, recursive=True)

    def write_shard(self, rows: list[dict]) -> str:
        """Write one batch of predictions atomically; returns the shard's path."""
        table = pa.Table.from_pylist(rows, schema=PREDICTION_SCHEMA)
        name = f"{uuid.uuid4().hex}.parquet"
        final = f"{self.shard_path}/{name}"
        temporary = f"{self.shard_path}/.{name}.tmp"
        with self.fs.open_output_stream(temporary) as stream:
            pq.write_table(table, stream)
        self.fs.move(temporary, final)
        return final

    def _shard_files(self) -> list[str]:
        selector = pafs.FileSelector(self.shard_path, allow_not_found=True)
        return sorted(
            info.path for info in self.fs.get_file_info(selector)
            if info.path.endswith(".parquet") and not info.base_name.startswith(".")
        )

    def done_request_ids(self) -> set[str]:
        ids: set[str] = set()
        for path in self._shard_files():
            table = pq.read_table(path, columns=["request_id"], filesystem=self.fs)
            ids.update(table.column("request_id").to_pylist())
        return ids

    def read(self) -> pa.Table:
        """Every prediction once, in request_id order (shards in any order give the same table)."""
        files = self._shard_files()
        if not files:
            return PREDICTION_SCHEMA.empty_table()
        tables = [pq.read_table(path, filesystem=self.fs, schema=PREDICTION_SCHEMA) for path in files]
        table = pa.concat_tables(tables)
        order = pc.sort_indices(table, sort_keys=[("request_id", "ascending")])
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


def write_table(table: pa.Table, uri: str) -> None:
    fs, path = pafs.FileSystem.from_uri(_as_uri(uri))
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as stream:
        pq.write_table(table, stream)
