"""Content fingerprints of files and folders: what a checkpoint, an adapter or an image *is*.

A fingerprint names content, never a location: the same adapter copied elsewhere has the same
fingerprint, and an adapter retrained in place gets a new one.

Files up to ``FULL_HASH_LIMIT`` bytes are hashed whole. Larger files (multi-GB weight shards)
are hashed by their size and ``SAMPLED_CHUNKS`` chunks of ``CHUNK_BYTES`` at fixed relative
offsets (start, evenly spaced, end): reading a few MB of a 16 GB checkpoint instead of all of
it. Any change of size and nearly any change of weights (a fine-tune touches every chunk) is
seen; an edit confined to bytes between the chunks of a large file is not, which is why
configs and tokenizers (small files) are hashed whole.

A folder's fingerprint hashes the relative path and fingerprint of each file below it, in
sorted order; entries whose name starts with a dot (``.cache``, ``.git``, lock files) are
skipped. Symbolic links are followed, as the Hugging Face cache lays snapshots out as links.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

FULL_HASH_LIMIT = 64 * 2**20
CHUNK_BYTES = 2**20
SAMPLED_CHUNKS = 5
DIGEST_CHARS = 20


def digest(value: Any) -> str:
    """A short stable hash of any JSON-able value (dict keys sorted)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def bytes_fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def file_fingerprint(path: str | Path) -> str:
    """The content hash of one file: whole up to ``FULL_HASH_LIMIT``, sampled above it."""
    path = Path(path)
    size = path.stat().st_size
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        if size <= FULL_HASH_LIMIT:
            for block in iter(lambda: stream.read(CHUNK_BYTES), b""):
                hasher.update(block)
        else:
            hasher.update(f"sampled:{size}".encode())
            last = size - CHUNK_BYTES
            for index in range(SAMPLED_CHUNKS):
                stream.seek(last * index // (SAMPLED_CHUNKS - 1))
                hasher.update(stream.read(CHUNK_BYTES))
    return hasher.hexdigest()[:DIGEST_CHARS]


def folder_fingerprint(path: str | Path) -> str:
    """The content hash of every file below ``path`` (dot-entries skipped), with their names."""
    root = Path(path)
    entries = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                file = Path(folder) / name
                entries.append((file.relative_to(root).as_posix(), file_fingerprint(file)))
    if not entries:
        raise ValueError(f"{root} holds no files to fingerprint")
    return digest(sorted(entries))


def content_fingerprint(path: str | Path) -> str:
    """``folder_fingerprint`` or ``file_fingerprint``, whichever ``path`` is."""
    path = Path(path)
    return folder_fingerprint(path) if path.is_dir() else file_fingerprint(path)
