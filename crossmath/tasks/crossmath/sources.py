"""Where a run's puzzles come from: generated on the fly, or the official release.

For the official release the release's own images are used for the styles it ships, found
through each style's release layout; other styles are rendered.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from PIL import Image

from crossmath.core.errors import UserError
from crossmath.drawing import Style
from crossmath.puzzle.consistency import Consistency, lint_record
from crossmath.puzzle.model import Puzzle
from crossmath.puzzle.records import ReleaseLayout, read_official_jsonl
from crossmath.puzzle.synthesis import GeneratorConfig, generate_puzzles

HUB_DATASET = "xuyige/CrossMath"
# Where a release folder keeps the jsonl that gives the puzzles: the original style's
# (conf/style/original.yaml: release_folder Original, release_tag hr).
RELEASE_TEXT_LAYOUT = ReleaseLayout("Original", "hr")


class DataSourceError(UserError, RuntimeError):
    pass


IMAGE_CHOICES = ("release", "render")  # data.images: the release's images, or ours in place
MAX_NAMED = 5  # missing images named in the message; the rest are counted


@dataclass
class PuzzleSet:
    puzzles: list[Puzzle]
    official_images: dict[tuple[str, str], Path] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)  # lint lines of skipped records
    # Official records only: what lint says of the set, and the images drawn by us in place
    # of the release's (``data.images=render``), as (``<style>/<puzzle name>``, why).
    consistency: Consistency | None = None
    rendered_in_place: list[tuple[str, str]] = field(default_factory=list)
    # Where the puzzles come from (an MLflow dataset source): the command that generates them
    # ("code"), the folder or file read ("local"), or the Hub dataset ("hugging_face").
    source: str = ""
    source_type: str = "code"

    @property
    def fingerprint(self) -> str:
        """Identifies the set: a hash of its puzzle ids, order included."""
        joined = ",".join(p.puzzle_id for p in self.puzzles)
        return hashlib.sha256(joined.encode()).hexdigest()[:12]


class ReleaseImagesMissing(DataSourceError):
    """Release images that are missing or cannot be read, where the release should give them."""


def load_puzzles(data: Mapping[str, Any], styles: Mapping[str, Style]) -> PuzzleSet:
    """The puzzles the ``data`` options (``conf/data/*.yaml``, resolved) name; the release's
    images are looked up for ``styles`` (as given -> ``Style``)."""
    if data["kind"] == "generated":
        return generated_puzzles(data["n"], data["difficulty"], data["seed"], data["generator"])
    if data["kind"] == "official":
        return official_puzzles(data["path"], styles, limit=data["n"],
                                skip_flagged=data["skip_flagged"], cache_dir=data["cache_dir"],
                                images=data.get("images", "release"))
    raise ValueError(f"data.kind must be generated or official, not {data['kind']!r}")


def generated_puzzles(n: int, difficulty: str, seed: int, generator: dict | None = None) -> PuzzleSet:
    config = GeneratorConfig(**(generator or {}))
    command = shlex.join(["python", "-m", "crossmath.generate", f"n={n}",
                          f"difficulty={difficulty}", f"seed={seed}",
                          *(f"generator.{key}={value}" for key, value in (generator or {}).items())])
    return PuzzleSet(generate_puzzles(n, difficulty, seed, config=config),
                     source=command, source_type="code")


def official_puzzles(path: str | None, styles: Mapping[str, Style], *,
                     limit: int | None = None,
                     skip_flagged: bool = False, cache_dir: str | None = None,
                     images: str = "release") -> PuzzleSet:
    """Puzzles of an official jsonl, or of a release folder (downloaded when no path is given).

    ``styles`` maps each style as given (a name or a path) to its ``Style``, whose release
    layout says where its files are. For each style whose release file is at hand, every
    puzzle's ``img_blank`` must be there and
    readable: a missing or broken one raises ``ReleaseImagesMissing`` naming them, unless
    ``images="render"`` asks for our rendering in their place (listed in ``rendered_in_place``).
    Every record is linted: ``skip_flagged`` drops those lint flags; otherwise they stay, and
    ``consistency`` says which they are.
    """
    root = Path(path).expanduser() if path else _download_release(cache_dir)
    if root.is_file():
        jsonl, release_root = root, None
    else:
        jsonl = release_style_jsonl(root, RELEASE_TEXT_LAYOUT)
        release_root = root
        if not jsonl.is_file():
            raise DataSourceError(f"{root} holds no {jsonl.relative_to(root)}: pass data.path=<a "
                                  "testset jsonl> or the folder that holds Original/, Noborder/ ...")
    records = read_official_jsonl(jsonl)[:limit]
    if not records:
        raise DataSourceError(f"data.path: {jsonl} holds no records (an empty file?); give a "
                              "testset jsonl of the release's format")
    puzzle_set = (PuzzleSet([], source=str(root.resolve()), source_type="local") if path
                  else PuzzleSet([], source=HUB_DATASET, source_type="hugging_face"))
    verdicts = []
    for record in records:
        result = lint_record(record)
        if skip_flagged and not result.ok:
            puzzle_set.flagged.append(result.describe())
            continue
        puzzle_set.puzzles.append(record.to_puzzle())
        verdicts.append(result)
    puzzle_set.consistency = Consistency(
        len(verdicts),
        tuple((puzzle.puzzle_id, puzzle.name, result.status)
              for puzzle, result in zip(puzzle_set.puzzles, verdicts) if not result.ok),
        100.0 * sum(result.solver_agrees for result in verdicts) / max(1, len(verdicts)))
    names = [p.name for p in puzzle_set.puzzles]
    problems: list[tuple[str, str]] = []  # (style/name, why)
    for style, drawn in styles.items():
        layout = drawn.layout
        style_jsonl = (release_root / layout.folder / layout.jsonl_name if release_root
                       else jsonl if jsonl.name == layout.jsonl_name else None)
        if style_jsonl is None or not style_jsonl.is_file():
            continue  # the release does not give this style here: it is rendered
        by_name = {record.name: record for record in read_official_jsonl(style_jsonl)}
        for name in names:
            record = by_name.get(name)
            problem = (f"no record of {name} in {style_jsonl.name}" if record is None
                       else image_problem(record.image_blank_path))
            if problem is None:
                puzzle_set.official_images[(name, style)] = record.image_blank_path
            else:
                problems.append((f"{style}/{name}", problem))
    if problems and images != "render":
        raise ReleaseImagesMissing(
            f"data.path: {len(problems)} release image(s) missing or unreadable: "
            f"{'; '.join(why for _, why in problems[:MAX_NAMED])}"
            + (f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else "")
            + ". Restore them from the release, or pass data.images=render to draw ours in "
            "their place (recorded in the evaluation's identity)")
    puzzle_set.rendered_in_place = sorted(problems)
    return puzzle_set


def image_problem(path: Path) -> str | None:
    """Why the release image at ``path`` cannot be used (missing, or not a readable image),
    or None when it can."""
    if not path.is_file():
        return f"{path} is missing"
    try:
        with Image.open(path) as image:
            image.verify()  # the whole file: a truncated or corrupted one fails here
    except Exception as error:  # noqa: BLE001 - whatever Pillow raises, the file is at fault
        return f"{path} cannot be read ({type(error).__name__}: {error})"
    return None


def release_style_jsonl(root: Path, layout: ReleaseLayout) -> Path:
    """Where a release folder keeps the jsonl of a style's ``layout``
    (``Original/testset_hr.jsonl``)."""
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
