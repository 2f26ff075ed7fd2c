"""The study's own training set (``dataset=crossmath-train``): its records and images, as puzzles.

The Hugging Face dataset ``xuyige/CrossMath-Train`` (cc-by-nc-nd-4.0) ships three files:
``train_dataset_all.jsonl`` (one puzzle a line) and two image archives, ``images_blank_hr.zip``
(the original style) and ``images_blank_noborder.zip`` (noborder). Its card documents no
schema; the records come from the generator of the test set, so they are read as the test set's
records are (``crossmath.puzzle.records``: ``markdown_table``, ``markdown_answer``,
``markdown_answer_step``, ``img_blank``, ``difficulty``, ``range``, ...). A file whose records
lack those fields stops the build with one line naming the missing fields.

Images are read from the archives as they are (``zipfile``, nothing extracted), found by the
puzzle's name (``math_puzzle_0012`` in ``.../math_puzzle_0012_blank.png``), whatever folder
the archive keeps them in. A record is kept only if:

- its grid parses and its answer holds (``lint``'s checks: the 7 defective puzzles of the test
  set show such records exist), else it is counted as *defective* and dropped;
- it is not an evaluation puzzle (same puzzle id or same solved grid as one of the excluded
  evaluation sets), else it is counted as an *overlap* and dropped.

Both counts are reported (``StudyPuzzles``) and written to the training set's manifest.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from crossmath.puzzle.model import Puzzle
from crossmath.puzzle.records import OfficialRecord, iter_record_lines

log = logging.getLogger(__name__)

HUB_TRAIN_DATASET = "xuyige/CrossMath-Train"
RECORDS_FILE = "train_dataset_all.jsonl"
STYLE_ARCHIVES = {"original": "images_blank_hr.zip", "noborder": "images_blank_noborder.zip"}
# The test set's fields training needs (the rationale and the reward read the step labels).
NEEDED_FIELDS = ("img_blank", "difficulty", "markdown_table", "markdown_answer",
                 "markdown_answer_step")
STUDY_SOURCE = "crossmath-train"


class StudyDataError(ValueError):
    """The study's files are missing or not in the expected shape; the message is one line."""


def study_folder(path: str | None, cache_dir: str | None = None) -> Path:
    """``path`` (a folder with the three files), or the Hub dataset downloaded into its cache."""
    if path:
        folder = Path(path).expanduser().resolve()
    else:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(repo_id=HUB_TRAIN_DATASET, repo_type="dataset",
                                            cache_dir=cache_dir))
        except Exception as error:  # offline, hub down, no access: all end the same way
            raise StudyDataError(
                f"could not download {HUB_TRAIN_DATASET} from the Hugging Face Hub "
                f"({type(error).__name__}: {error}); download it elsewhere and pass "
                "dataset.path=<the folder holding train_dataset_all.jsonl and the image zips>"
            ) from None
    if not (folder / RECORDS_FILE).is_file():
        raise StudyDataError(f"dataset.path={folder}: no {RECORDS_FILE} there (the folder of "
                             f"{HUB_TRAIN_DATASET}: {RECORDS_FILE}, {', '.join(STYLE_ARCHIVES.values())})")
    return folder


def puzzle_name(member: str) -> str:
    """``math_puzzle_0012`` for ``.../math_puzzle_0012_blank_noborder.png`` (the release's naming)."""
    return Path(member).stem.split("_blank")[0]


class ImageArchive:
    """A style's zip of puzzle images, read in place; members found by puzzle name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path)
        self.members = {puzzle_name(info.filename): info.filename for info in self.zip.infolist()
                        if info.filename.lower().endswith(".png") and not info.is_dir()}

    def image(self, name: str) -> bytes | None:
        member = self.members.get(name)
        return None if member is None else self.zip.read(member)

    def fingerprint(self) -> str:
        """Of the archive's content: each member's name and CRC (from its directory)."""
        listing = sorted(f"{info.filename}:{info.CRC:08x}" for info in self.zip.infolist())
        return hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]

    def close(self) -> None:
        self.zip.close()


@dataclass
class StudyPuzzles:
    """The kept puzzles with their images per style, and what was dropped and why."""

    puzzles: list[Puzzle] = field(default_factory=list)
    images: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (puzzle id, style) -> PNG
    records: int = 0
    overlaps: int = 0
    defective: int = 0
    missing_images: int = 0

    def report(self) -> str:
        return (f"{STUDY_SOURCE}: {len(self.puzzles)} of {self.records} records kept; "
                f"{self.overlaps} overlap an evaluation set (by grid) and are dropped; "
                f"{self.defective} defective (answer contradicts the grid) dropped; "
                f"{self.missing_images} without an image in every style dropped")

    def counts(self) -> dict[str, int]:
        return {"records": self.records, "kept": len(self.puzzles), "overlaps": self.overlaps,
                "defective": self.defective, "missing_images": self.missing_images}


@dataclass(frozen=True)
class StudySource:
    """The study's files in a local folder, with a fingerprint of their content."""

    folder: Path
    origin: str  # where they came from: a folder or the Hub dataset

    @classmethod
    def open(cls, path: str | None, cache_dir: str | None = None) -> "StudySource":
        folder = study_folder(path, cache_dir)
        return cls(folder, f"file://{folder}" if path else f"hf://datasets/{HUB_TRAIN_DATASET}")

    def archive(self, style: str) -> ImageArchive:
        if style not in STYLE_ARCHIVES:
            raise StudyDataError(f"dataset.styles: the study's images come in {sorted(STYLE_ARCHIVES)} "
                                 f"only, not {style!r}")
        path = self.folder / STYLE_ARCHIVES[style]
        if not path.is_file():
            raise StudyDataError(f"{self.folder}: no {STYLE_ARCHIVES[style]} (the {style} images)")
        return ImageArchive(path)

    def fingerprint(self, styles: Sequence[str]) -> str:
        """Of the records file's bytes and of the archives of ``styles``."""
        digest = hashlib.sha256((self.folder / RECORDS_FILE).read_bytes())
        for style in sorted(styles):
            archive = self.archive(style)
            digest.update(f"{style}:{archive.fingerprint()}".encode())
            archive.close()
        return digest.hexdigest()[:16]

    def records(self, limit: int | None = None) -> list[OfficialRecord]:
        """The records, checked for the test set's fields (one line naming what is missing)."""
        path = self.folder / RECORDS_FILE
        records = []
        for item in iter_record_lines(path):
            if not isinstance(item, OfficialRecord):
                if "missing field" in item.reason:
                    raise StudyDataError(f"{path} line {item.line}: {item.reason}; expected the test "
                                         f"set's record fields ({', '.join(NEEDED_FIELDS)})")
                raise item
            missing = [name for name in NEEDED_FIELDS if name not in item.fields]
            if missing:
                raise StudyDataError(f"{path} line {item.line}: missing field(s) {', '.join(missing)}; "
                                     f"expected the test set's record fields ({', '.join(NEEDED_FIELDS)})")
            records.append(item)
            if limit is not None and len(records) >= limit:
                break
        return records

    def puzzles(self, styles: Sequence[str], excludes: Callable[[Puzzle], bool],
                limit: int | None = None) -> StudyPuzzles:
        """Kept puzzles and their images (``excludes(puzzle)``: an evaluation puzzle)."""
        from crossmath.puzzle.consistency import lint_record

        archives = {style: self.archive(style) for style in styles}
        found = StudyPuzzles()
        seen: set[str] = set()
        try:
            for record in self.records(limit):
                found.records += 1
                if not lint_record(record).ok:
                    found.defective += 1
                    continue
                puzzle = record.to_puzzle()
                if excludes(puzzle):
                    found.overlaps += 1
                    continue
                images = {style: archive.image(record.name) for style, archive in archives.items()}
                if any(image is None for image in images.values()):
                    found.missing_images += 1
                    continue
                if puzzle.puzzle_id in seen:  # the same grid twice: one set of examples
                    continue
                seen.add(puzzle.puzzle_id)
                found.puzzles.append(puzzle)
                for style, image in images.items():
                    found.images[(puzzle.puzzle_id, style)] = image
        finally:
            for archive in archives.values():
                archive.close()
        if found.records and not found.puzzles and found.missing_images == found.records:
            raise StudyDataError(f"{self.folder}: no record's image was found in "
                                 f"{', '.join(STYLE_ARCHIVES[s] for s in styles)}")
        return found
