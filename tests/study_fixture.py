"""A folder laid out as the study's training set (``xuyige/CrossMath-Train``), built at test time
from the shared official sample: ``train_dataset_all.jsonl`` in the test set's record schema and
the two image archives, ``images_blank_hr.zip`` (original) and ``images_blank_noborder.zip``.

The sample's puzzles are evaluation puzzles, which is what lets one fixture prove both halves of
the disjointness rule: the first ``evaluation`` records are also written as an evaluation set
(a ``testset_hr.jsonl`` to pass as ``dataset.exclude_official``), so they must be reported as
overlaps and dropped, while the others are trained on. One more record has an answer that
breaks its own grid (``defective``), as 7 of the 250 test puzzles do.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from crossmath.puzzle.records import read_official_jsonl

ARCHIVES = {"original": ("Original", "testset_hr.jsonl", "images_blank_hr.zip", "images_blank_hr"),
            "noborder": ("Noborder", "testset_noborder.jsonl", "images_blank_noborder.zip",
                         "images_blank_noborder")}


@dataclass(frozen=True)
class StudyFixture:
    folder: Path  # dataset.path
    evaluation_jsonl: Path  # dataset.exclude_official: the overlapping records
    overlapping: tuple[str, ...]  # names of the records that are evaluation puzzles
    defective: str  # name of the record whose answer contradicts its grid
    trained: tuple[str, ...]  # names of the records that must be trained on


def _break_answer(record: dict) -> dict:
    """The record with its first answer value changed (the grid then contradicts it)."""
    rows = record["markdown_answer"].split("\n")
    for r, row in enumerate(rows):
        cells = row.split("|")
        for c, cell in enumerate(cells):
            if cell.strip().isdigit():
                cells[c] = f" {int(cell) + 1} "
                rows[r] = "|".join(cells)
                return {**record, "markdown_answer": "\n".join(rows)}
    raise ValueError("no answer value to change")


def write_study_folder(sample: Path, root: Path, evaluation: int = 4) -> StudyFixture:
    folder = root / "CrossMath-Train"
    folder.mkdir(parents=True)
    original = read_official_jsonl(sample / "Original" / "testset_hr.jsonl")
    names = [record.name for record in original]
    defective = names[evaluation]
    with open(folder / "train_dataset_all.jsonl", "w", encoding="utf-8") as handle:
        for record in original:
            fields = {**record.fields,
                      "img_blank": f"images_blank_hr/{record.name}_blank.png",
                      "img": f"images_hr/{record.name}.png"}
            if record.name == defective:
                fields = _break_answer(fields)
            handle.write(json.dumps(fields, ensure_ascii=False) + "\n")
    for release_folder, jsonl, archive, inner in ARCHIVES.values():
        with zipfile.ZipFile(folder / archive, "w") as zipped:
            for record in read_official_jsonl(sample / release_folder / jsonl):
                image = record.image_blank_path
                zipped.write(image, f"{inner}/{image.name}")
    evaluation_dir = root / "evaluation"
    evaluation_dir.mkdir()
    evaluation_jsonl = evaluation_dir / "testset_hr.jsonl"
    evaluation_jsonl.write_text("".join(json.dumps(r.fields, ensure_ascii=False) + "\n"
                                        for r in original[:evaluation]), encoding="utf-8")
    trained = tuple(n for n in names[evaluation:] if n != defective)
    return StudyFixture(folder, evaluation_jsonl, tuple(names[:evaluation]), defective, trained)


def archive_image(fixture: StudyFixture, style: str, name: str) -> bytes:
    _, _, archive, _ = ARCHIVES[style]
    with zipfile.ZipFile(fixture.folder / archive) as zipped:
        (member,) = [m for m in zipped.namelist() if Path(m).name.startswith(f"{name}_blank")]
        return zipped.read(member)
