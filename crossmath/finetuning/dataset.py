"""The training set: generated puzzles, the study's own set, or both, disjoint from the
evaluation sets, as prompt/target rows.

``sources`` picks what it holds: ``generated`` (our generator, seeded), ``crossmath-train``
(the study's released set, ``study_data.py``: its records and its images from the archives),
or both; every other step below is the same for either.

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

from crossmath.drawing import Style, load_style, render_puzzle_png
from crossmath.finetuning.study_data import STUDY_SOURCE, StudySource
from crossmath.finetuning.targets import TARGET_KINDS, target_text
from crossmath.models.base import MODALITIES, TEXT_STYLE
from crossmath.puzzle.model import Puzzle, grid_fingerprint
from crossmath.puzzle.synthesis import GeneratorConfig, generate_puzzles
from crossmath.settings.sections import check_known_fields
from crossmath.tasks.crossmath.sources import generated_puzzles, official_puzzles

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # bump when the rows written for the same spec change
GENERATED = "generated"
SOURCES = (GENERATED, STUDY_SOURCE)

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
    """What to build. ``generator`` holds ``GeneratorConfig`` fields (``max_value``, ``operators``);
    ``n_puzzles``, ``difficulty``, ``seed`` and ``generator`` shape the generated puzzles,
    ``records`` (the first N, or all) the study's."""

    sources: tuple[str, ...] = (GENERATED,)
    n_puzzles: int = 5000
    difficulty: str = "mixed"
    seed: int = 1000
    generator: Mapping = field(default_factory=dict)
    styles: tuple[str, ...] = ("original", "noborder")
    modalities: tuple[str, ...] = ("image", "hybrid", "text")
    target: str = "rationale"
    shard_puzzles: int = 1000
    records: int | None = None

    def __post_init__(self) -> None:
        unknown_sources = sorted(set(self.sources) - set(SOURCES))
        if unknown_sources or not self.sources:
            raise ValueError(f"dataset.sources: unknown {unknown_sources}; choose from {SOURCES}")
        if self.records is not None and self.records < 1:
            raise ValueError(f"dataset.records must be at least 1 or null, got {self.records}")
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
        for name in ("sources", "styles", "modalities"):
            if name in values:
                values[name] = tuple(values[name])
        values["generator"] = dict(values.get("generator") or {})
        return cls(**values)

    def fingerprint(self, exclusion: "Exclusion", study: str | None = None) -> str:
        """Identifies the rows this spec builds against this exclusion (and ``study``, the
        fingerprint of the study's files, when they are a source)."""
        key = json.dumps({"spec": asdict(self) | {"generator": dict(self.generator)},
                          "exclusion": exclusion.fingerprint, "format": FORMAT_VERSION,
                          "study": study},
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

    def with_puzzles(self, puzzles: Sequence[Puzzle]) -> "Exclusion":
        """This exclusion, plus ``puzzles`` by id (a mixed set does not generate the study's)."""
        return Exclusion(self.puzzle_ids | {p.puzzle_id for p in puzzles}, self.solved_grids)

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
    puzzles: list[Puzzle] = []
    for index, entry in enumerate(generated):
        missing = [k for k in ("n", "difficulty", "seed") if k not in entry]
        if missing:
            raise ValueError(f"dataset.exclude_generated[{index}]: missing field(s) {missing}")
        puzzles += generated_puzzles(int(entry["n"]), str(entry["difficulty"]), int(entry["seed"]),
                                     dict(entry.get("generator") or {})).puzzles
    if official:
        puzzles += official_puzzles(official, styles={}).puzzles
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
                       exclusion: Exclusion = Exclusion(), study: StudySource | None = None, *,
                       styles: Mapping[str, Style] | None = None) -> TrainingSet:
    """The set in ``folder``: reused if built from the same spec, else built now. ``study``:
    the study's files, needed when ``spec.sources`` holds ``crossmath-train``; ``styles``: the
    ``Style`` of each of ``spec.styles`` already read (the door's), the rest read here."""
    folder = Path(folder).expanduser().resolve()
    if (STUDY_SOURCE in spec.sources) != (study is not None):
        raise ValueError(f"dataset.sources {list(spec.sources)}: the study's files must be given "
                         f"exactly when {STUDY_SOURCE!r} is a source")
    image_styles = spec.styles if any(m != "text" for m in spec.modalities) else ()
    study_print = study.fingerprint(image_styles) if study is not None else None
    fingerprint = spec.fingerprint(exclusion, study_print)
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
    puzzles, image_of, provenance = [], {}, {}
    if STUDY_SOURCE in spec.sources:
        found = study.puzzles(image_styles, exclusion.excludes, spec.records)
        log.info("%s", found.report())
        puzzles += found.puzzles
        image_of.update(found.images)
        provenance[STUDY_SOURCE] = {"origin": study.origin, "files_fingerprint": study_print,
                                    **found.counts()}
    if GENERATED in spec.sources:
        generated = generate_training_puzzles(spec, exclusion.with_puzzles(puzzles))
        puzzles += generated
        provenance[GENERATED] = {"n_puzzles": len(generated), "seed": spec.seed}
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        shards, n_examples = [], 0
        content = hashlib.sha256()
        painter = _Painter(styles or {})
        for index, start in enumerate(range(0, len(puzzles), spec.shard_puzzles)):
            rows = []
            for puzzle in puzzles[start:start + spec.shard_puzzles]:
                images = {style: image_of.get((puzzle.puzzle_id, style)) or painter.png(puzzle, style)
                          for style in image_styles}
                rows += puzzle_examples(puzzle, spec, images)
            for row in rows:
                content.update(_row_digest(row))
            name = f"examples-{index:05d}.parquet"
            pq.write_table(pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA), staging / name)
            shards.append(name)
            n_examples += len(rows)
        manifest = {
            "fingerprint": fingerprint, "format": FORMAT_VERSION,
            "content_fingerprint": content.hexdigest()[:16],
            "source": dataset_source(spec, study),
            "spec": asdict(spec) | {"generator": dict(spec.generator)},
            "n_puzzles": len(puzzles), "n_examples": n_examples, "shards": shards,
            "sources": provenance,
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


class _Painter:
    """Our renderings of generated puzzles, one style object per style name (those given, the
    others read on first use)."""

    def __init__(self, styles: Mapping[str, Style]) -> None:
        self.styles = dict(styles)

    def png(self, puzzle: Puzzle, style: str) -> bytes:
        if style not in self.styles:
            self.styles[style] = load_style(style)
        return render_puzzle_png(puzzle.grid, self.styles[style])


def _row_digest(row: Mapping) -> bytes:
    """What identifies an example's content: its id, prompt fields, image and target."""
    image = hashlib.sha256(row["image"]).hexdigest() if row["image"] is not None else "-"
    fields = [row["example_id"], row["modality"], row["style"], row["grid"], image, row["target"]]
    return hashlib.sha256("\x1f".join(fields).encode()).digest()


def dataset_source(spec: TrainingSetSpec, study: StudySource | None) -> str:
    """Where the rows come from, as one string (MLflow records it beside the fingerprints)."""
    parts = []
    if STUDY_SOURCE in spec.sources and study is not None:
        parts.append(f"{STUDY_SOURCE}:{study.origin}")
    if GENERATED in spec.sources:
        parts.append(f"{GENERATED}:seed={spec.seed},n={spec.n_puzzles},difficulty={spec.difficulty}")
    return " + ".join(parts)


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
