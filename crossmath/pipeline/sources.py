"""Where a run's puzzles come from: generated on the fly, or the official release.

For the official release the release's own images are used for the styles it ships, found
through each style's release layout; other styles are rendered.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from crossmath.puzzle.consistency import lint_record
from crossmath.puzzle.model import Puzzle
from crossmath.puzzle.records import read_official_jsonl
from crossmath.puzzle.synthesis import GeneratorConfig, generate_puzzles

HUB_DATASET = "xuyige/CrossMath"
RELEASE_TEXT_STYLE = "original"  # whose jsonl gives the puzzles when a folder is given


class DataSourceError(RuntimeError):
    pass


@dataclass
class PuzzleSet:
    puzzles: list[Puzzle]
    official_images: dict[tuple[str, str], Path] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)  # lint lines of skipped records
    # Where the puzzles come from (an MLflow dataset source): the command that generates them
    # ("code"), the folder or file read ("local"), or the Hub dataset ("hugging_face").
    source: str = ""
    source_type: str = "code"

    @property
    def fingerprint(self) -> str:
        """Identifies the set: a hash of its puzzle ids, order included."""
        joined = ",".join(p.puzzle_id for p in self.puzzles)
        return hashlib.sha256(joined.encode()).hexdigest()[:12]


def generated_puzzles(n: int, difficulty: str, seed: int, generator: dict | None = None) -> PuzzleSet:
    config = GeneratorConfig(**(generator or {}))
    command = shlex.join(["python", "-m", "crossmath.generate", f"n={n}",
                          f"difficulty={difficulty}", f"seed={seed}",
                          *(f"generator.{key}={value}" for key, value in (generator or {}).items())])
    return PuzzleSet(generate_puzzles(n, difficulty, seed, config=config),
                     source=command, source_type="code")


def official_puzzles(path: str | None, styles: Sequence[str], *, limit: int | None = None,
                     skip_flagged: bool = False, cache_dir: str | None = None) -> PuzzleSet:
    """Puzzles of an official jsonl, or of a release folder (downloaded when no path is given)."""
    from crossmath.drawing import load_style

    root = Path(path).expanduser() if path else _download_release(cache_dir)
    if root.is_file():
        jsonl, release_root = root, None
    else:
        jsonl = release_style_jsonl(root, RELEASE_TEXT_STYLE)
        release_root = root
        if not jsonl.is_file():
            raise DataSourceError(f"{root} holds no {jsonl.relative_to(root)}: pass data.path=<a "
                                  "testset jsonl> or the folder that holds Original/, Noborder/ ...")
    records = read_official_jsonl(jsonl)[:limit]
    puzzle_set = (PuzzleSet([], source=str(root.resolve()), source_type="local") if path
                  else PuzzleSet([], source=HUB_DATASET, source_type="hugging_face"))
    for record in records:
        if skip_flagged:
            result = lint_record(record)
            if not result.ok:
                puzzle_set.flagged.append(result.describe())
                continue
        puzzle_set.puzzles.append(record.to_puzzle())
    names = {p.name for p in puzzle_set.puzzles}
    for style in styles:
        layout = load_style(style).layout
        style_jsonl = (release_root / layout.folder / layout.jsonl_name if release_root
                       else jsonl if jsonl.name == layout.jsonl_name else None)
        if style_jsonl is None or not style_jsonl.is_file():
            continue
        for record in read_official_jsonl(style_jsonl):
            if record.name in names and record.image_blank_path.is_file():
                puzzle_set.official_images[(record.name, style)] = record.image_blank_path
    return puzzle_set


def release_style_jsonl(root: Path, style: str) -> Path:
    """Where a release folder keeps the jsonl of ``style`` (``Original/testset_hr.jsonl``)."""
    from crossmath.drawing import load_style

    layout = load_style(style).layout
    return root / layout.folder / layout.jsonl_name


def _download_release(cache_dir: str | None) -> Path:
    """The release from the Hugging Face Hub, fetched once into the hub cache."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=HUB_DATASET, repo_type="dataset", cache_dir=cache_dir))
    except Exception as error:  # offline, hub down, no access: all end the same way
        raise DataSourceError(
            f"could not download the official release ({HUB_DATASET}) from the Hugging Face Hub: "
            f"{type(error).__name__}: {error}\nOffline? Download it elsewhere and pass "
            "data.path=/path/to/CrossMath (the folder holding Original/testset_hr.jsonl) "
            "or data.path=/path/to/testset_hr.jsonl"
        ) from None
