"""``crossmath lint``'s door: ``path`` read into the jsonl files to check (``LintSettings``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from crossmath.core.errors import ConfigError
from crossmath.puzzle.consistency import LintPathError, jsonl_problem, release_jsonl_files


@dataclass(frozen=True)
class LintSettings:
    """The jsonl files ``path`` names, each one that can be read as jsonl."""

    files: tuple[Path, ...]

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "LintSettings":
        try:
            files = release_jsonl_files(cfg.path)
        except LintPathError as error:
            raise ConfigError("path", str(error)) from None
        for path in files:
            problem = jsonl_problem(path)
            if problem is not None:
                raise ConfigError("path", f"{path} {problem}")
        return cls(files=tuple(files))
