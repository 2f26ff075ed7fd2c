"""CrossMath's ``data`` options checked before any work: generated puzzles, or the official
release (a testset jsonl, or the release folder). The main job's door checks a run's ``data``
with them, the fine-tuning job's door the puzzles its training set must leave out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from crossmath.core.errors import ConfigError
from crossmath.settings.checks import (
    existing_path,
    non_empty_file,
    one_of,
    puzzle_generation,
    whole_number,
)
from crossmath.tasks.crossmath.sources import (
    IMAGE_CHOICES,
    RELEASE_TEXT_LAYOUT,
    release_style_jsonl,
)

DATA_KINDS = ("generated", "official")


def check_data_options(data: Mapping[str, Any], where: str = "data") -> None:
    """The ``data`` group: generated puzzles, or the official release."""
    kind = one_of(data.get("kind"), f"{where}.kind", DATA_KINDS)
    if kind == "generated":
        whole_number(data.get("n"), f"{where}.n")
        puzzle_generation(data.get("difficulty"), data.get("generator"), where)
        whole_number(data.get("seed"), f"{where}.seed", minimum=0)
        return
    whole_number(data.get("n"), f"{where}.n", none_means="every puzzle")
    one_of(data.get("images", "release"), f"{where}.images", IMAGE_CHOICES)
    if data.get("path") is not None:
        release_jsonl(data["path"], f"{where}.path")


def release_jsonl(value: Any, where: str) -> Path:
    """The testset jsonl a path names: the file itself, or the release folder's original-style
    file (``Original/testset_hr.jsonl``)."""
    path = existing_path(value, where)
    jsonl = path if path.is_file() else release_style_jsonl(path, RELEASE_TEXT_LAYOUT)
    if not jsonl.is_file():
        raise ConfigError(where, f"{path} is a folder without the release's layout: expected "
                                 f"{jsonl.relative_to(path)} in it (or give the path of a "
                                 "testset jsonl)")
    return non_empty_file(jsonl, where)
