"""The training set: generated puzzles, disjoint from the evaluation sets, as prompt/target rows.

Each puzzle is rendered once per configured style and expanded into the configured modalities,
the way the evaluation expands requests: an image and a hybrid example per style, and one text
example per puzzle (the text prompt shows no picture, so a style would change nothing; its
style is recorded as ``markdown``, as the evaluation records it). Every example carries what the
evaluation's ``ModelRequest`` carries (grid, image, blank count, value range), so training
prompts are built by the same function as evaluation prompts, plus the target reply.

Disjointness is checked two ways against every evaluation set given: by ``puzzle_id`` (the hash
of the puzzle grid, blanks included) and by the solved grid (the same equations with another
choice of blanks would teach the answers). Generated puzzles that collide are skipped and
replaced by the next ones of the same seeded sequence, so the set stays deterministic.

The set is written as parquet shards (PNG bytes inline) plus ``manifest.json``; a folder whose
manifest matches the spec is reused, and a build writes to a staging folder renamed at the end,
so an interrupted build never leaves a set that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crossmath.finetuning.config_checks import check_known_fields
from crossmath.finetuning.targets import TARGET_KINDS, target_text
from crossmath.models.base import MODALITIES, TEXT_STYLE
from crossmath.puzzle.model import Puzzle, grid_fingerprint
from crossmath.puzzle.synthesis import GeneratorConfig, generate_puzzles

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1  # bump when the rows written for the same spec change

EXAMPLE_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("puzzle_id", pa.string()),
        ("name", pa.string()),
        ("difficulty", pa.string()),
        ("modality", pa.string()),
        ("style", pa.string()),
        ("grid", pa.string()),
        ("n_blanks", pa.int32()),
        ("value_range", pa.list_(pa.int32(), 2)),
        ("image", pa.binary()),
        ("target", pa.string()),
        ("answer", pa.list_(pa.string())),
        ("steps", pa.list_(pa.int32())),
    ]
)


@dataclass(frozen=True)
class TrainingSetSpec:
    """What to build. ``generator`` holds ``GeneratorConfig`` fields (``max_value``, ``operators``)."""

    n_puzzles: int = 5000
    difficulty: str = "mixed"
    seed: int = 1000
    generator: Mapping = field(default_factory=dict)
    styles: tuple[str, ...] = ("original", "noborder")
    modalities: tuple[str, ...] = ("image", "hybrid", "text")
    target: str = "rationale"
    shard_puzzles: int = 1000

    def __post_init__(self) -> None:
        if self.n_puzzles < 1:
            raise ValueError(f"dataset.n_puzzles must be at least 1, got {self.n_puzzles}")
        unknown = sorted(set(self.modalities) - set(MODALITIES))
        if unknown or not self.modalities:
            raise ValueError(f"dataset.modalities: unknown {unknown}; choose from {MODALITIES}")
        if any(m != "text" for m in self.modalities) and not self.styles:
            raise ValueError("dataset.styles is empty, but image and hybrid examples need a style")
        if self.target not in TARGET_KINDS:
            raise ValueError(f"dataset.target must be one of {TARGET_KINDS}, got {self.target!r}")
        if self.shard_puzzles < 1:
            raise ValueError("dataset.shard_puzzles must be at least 1")

    @classmethod
    def from_mapping(cls, fields: Mapping) -> "TrainingSetSpec":
        check_known_fields("dataset", fields, cls)
        values = dict(fields)
        for name in ("styles", "modalities"):
            if name in values:
                values[name] = tuple(values[name])
        values["generator"] = dict(values.get("generator") or {})
        return cls(**values)

    def fingerprint(self, exclusion: "Exclusion") -> str:
        """Identifies the rows this spec builds against this exclusion."""
        key = json.dumps({"spec": asdict(self) | {"generator": dict(self.generator)},
                          "exclusion": exclusion.fingerprint, "format": FORMAT_VERSION},
                         sort_keys=True, default=list)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Exclusion:
    """Puzzles the training set must not contain: by puzzle id and by solved grid."""

    puzzle_ids: frozenset[str] = frozenset()
    solved_grids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, puzzles: Iterable[Puzzle]) -> "Exclusion":
        puzzles = list(puzzles)
        return cls(frozenset(p.puzzle_id for p in puzzles),
                   frozenset(solved_fingerprint(p) for p in puzzles))

    def excludes(self, puzzle: Puzzle) -> bool:
        return puzzle.puzzle_id in self.puzzle_ids or solved_fingerprint(puzzle) in self.solved_grids

    @property
    def fingerprint(self) -> str:
        joined = ",".join(sorted(self.puzzle_ids)) + ";" + ",".join(sorted(self.solved_grids))
        return hashlib.sha256(joined.encode()).hexdigest()[:16]


def solved_fingerprint(puzzle: Puzzle) -> str:
    return grid_fingerprint(puzzle.solved_grid().to_markdown())


def evaluation_puzzles(generated: Sequence[Mapping] = (), official: str | None = None) -> list[Puzzle]:
    """The puzzles of the evaluation sets to keep out of training.

    ``generated`` entries have the main job's ``data=generated`` fields (``n``, ``difficulty``,
    ``seed``, ``generator``) and make exactly the puzzles that evaluation makes; ``official``
    is the path of an official testset jsonl or release folder.
    """
    from crossmath.pipeline.sources import generated_puzzles, official_puzzles

    puzzles: list[Puzzle] = []
    for index, entry in enumerate(generated):
        missing = [k for k in ("n", "difficulty", "seed") if k not in entry]
        if missing:
            raise ValueError(f"dataset.exclude_generated[{index}]: missing field(s) {missing}")
        puzzles += generated_puzzles(int(entry["n"]), str(entry["difficulty"]), int(entry["seed"]),
                                     dict(entry.get("generator") or {})).puzzles
    if official:
        puzzles += official_puzzles(official, styles=[]).puzzles
    return puzzles


def generate_training_puzzles(spec: TrainingSetSpec, exclusion: Exclusion) -> list[Puzzle]:
    """``spec.n_puzzles`` distinct generated puzzles, none of them excluded.

    ``generate_puzzles`` already skips excluded ids; solved-grid collisions are dropped here
    and the set topped up from later indices of the same sequence.
    """
    config = GeneratorConfig(**dict(spec.generator))
    kept: list[Puzzle] = []
    seen = set(exclusion.puzzle_ids)
    start, dropped = 0, 0
    while len(kept) < spec.n_puzzles:
        wanted = spec.n_puzzles - len(kept)
        batch = generate_puzzles(wanted, spec.difficulty, spec.seed, config=config,
                                 exclude_ids=frozenset(seen), start=start)
        start += wanted
        for puzzle in batch:
            seen.add(puzzle.puzzle_id)
            if exclusion.excludes(puzzle):
                dropped += 1
            else:
                kept.append(puzzle)
    if dropped:
        log.info("dropped %d generated puzzles whose solved grid is in an evaluation set", dropped)
    return kept


def example_id(puzzle_id: str, modality: str, style: str) -> str:
    return hashlib.sha256(f"{puzzle_id}\x1f{modality}\x1f{style}".encode()).hexdigest()[:20]


def puzzle_examples(puzzle: Puzzle, spec: TrainingSetSpec, images: Mapping[str, bytes]) -> list[dict]:
    """The example rows of one puzzle; ``images`` maps each style to its PNG."""
    target = target_text(puzzle, spec.target)  # type: ignore[arg-type]
    common = {
        "puzzle_id": puzzle.puzzle_id, "name": puzzle.name, "difficulty": puzzle.difficulty,
        "grid": puzzle.markdown_table, "n_blanks": len(puzzle.answer),
        "value_range": list(puzzle.value_range), "target": target, "answer": puzzle.answer,
        "steps": puzzle.step_labels,
    }
    rows = []
    for modality in spec.modalities:
        styles = [TEXT_STYLE] if modality == "text" else spec.styles
        for style in styles:
            rows.append({**common, "example_id": example_id(puzzle.puzzle_id, modality, style),
                         "modality": modality, "style": style,
                         "image": None if modality == "text" else images[style]})
    return rows


@dataclass(frozen=True)
class TrainingSet:
    """A built set on disk: its folder, shard files and manifest fields."""

    folder: Path
    manifest: dict

    @property
    def shards(self) -> list[Path]:
        return [self.folder / name for name in self.manifest["shards"]]

    @property
    def n_examples(self) -> int:
        return int(self.manifest["n_examples"])

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        return pa.concat_tables(pq.read_table(path, columns=columns, schema=EXAMPLE_SCHEMA)
                                for path in self.shards)


def build_training_set(spec: TrainingSetSpec, folder: str | Path,
                       exclusion: Exclusion = Exclusion()) -> TrainingSet:
    """The set in ``folder``: reused if built from the same spec, else built now."""
    folder = Path(folder).expanduser().resolve()
    fingerprint = spec.fingerprint(exclusion)
    existing = _read_manifest(folder)
    if existing is not None:
        if existing.get("fingerprint") == fingerprint:
            log.info("training set in %s is up to date (%d examples)", folder, existing["n_examples"])
            return TrainingSet(folder, existing)
        raise FileExistsError(
            f"{folder} holds a training set built from another spec (fingerprint "
            f"{existing.get('fingerprint')}, wanted {fingerprint}); remove it or choose another "
            "dataset.path"
        )
    from crossmath.drawing import load_style, render_puzzle_png

    styles = {name: load_style(name) for name in spec.styles} if any(
        m != "text" for m in spec.modalities) else {}
    puzzles = generate_training_puzzles(spec, exclusion)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        shards, n_examples = [], 0
        for index, start in enumerate(range(0, len(puzzles), spec.shard_puzzles)):
            rows = []
            for puzzle in puzzles[start:start + spec.shard_puzzles]:
                images = {name: render_puzzle_png(puzzle.grid, style) for name, style in styles.items()}
                rows += puzzle_examples(puzzle, spec, images)
            name = f"examples-{index:05d}.parquet"
            pq.write_table(pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA), staging / name)
            shards.append(name)
            n_examples += len(rows)
        manifest = {
            "fingerprint": fingerprint, "format": FORMAT_VERSION,
            "spec": asdict(spec) | {"generator": dict(spec.generator)},
            "n_puzzles": len(puzzles), "n_examples": n_examples, "shards": shards,
            "excluded_puzzle_ids": len(exclusion.puzzle_ids),
            "excluded_solved_grids": len(exclusion.solved_grids),
            "exclusion_fingerprint": exclusion.fingerprint,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, default=list) + "\n",
                                        encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("built training set in %s: %d puzzles, %d examples", folder, len(puzzles), n_examples)
    return open_training_set(folder)


def open_training_set(folder: str | Path) -> TrainingSet:
    folder = Path(folder).expanduser().resolve()
    manifest = _read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"{folder}: no training set there (no {MANIFEST})")
    return TrainingSet(folder, manifest)


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} exists and is not a training set (no {MANIFEST})")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None


def is_validation(puzzle_id: str, fraction: float, seed: int = 0) -> bool:
    """Whether a puzzle is held out: a hash of its id, so all its examples go the same way."""
    if not 0 <= fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    digest = hashlib.sha256(f"{seed}:{puzzle_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_validation(table: pa.Table, fraction: float, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(train, validation) rows, split by puzzle, each sorted by ``example_id``.

    Sorting makes the order independent of how the rows were read (Ray Data does not keep it).
    """
    table = table.sort_by("example_id")
    held = pa.array([is_validation(pid, fraction, seed)
                     for pid in table.column("puzzle_id").to_pylist()], type=pa.bool_())
    return table.filter(pc.invert(held)), table.filter(held)
