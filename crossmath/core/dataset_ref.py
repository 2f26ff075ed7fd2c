"""A data set as a run names it: name, content fingerprint, and where it comes from.

A source is one of

- ``local``: a path or URI (``/data/CrossMath``, ``s3://bucket/set``);
- ``hugging_face``: a Hugging Face Hub dataset id (``xuyige/CrossMath``);
- ``code``: the command that makes the data (generated puzzles are made on the fly).

Plain data, without MLflow (``datasets`` logs it as a run's input), so that planning an
evaluation does not import MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCE_TYPES = ("local", "hugging_face", "code")


@dataclass(frozen=True)
class DatasetRef:
    """A data set by name, content fingerprint and source (see the module docstring)."""

    name: str
    fingerprint: str
    source: str
    source_type: str = "local"

    def __post_init__(self) -> None:
        if self.source_type not in SOURCE_TYPES:
            raise ValueError(f"dataset {self.name}: source_type must be one of "
                             f"{', '.join(SOURCE_TYPES)}, not {self.source_type!r}")

    @classmethod
    def of_path(cls, name: str, fingerprint: str, path: str | Path) -> "DatasetRef":
        """A set read from ``path`` (made absolute: a relative path means nothing later)."""
        text = str(path)
        location = text if "://" in text else str(Path(text).expanduser().resolve())
        return cls(name, fingerprint, location, "local")
