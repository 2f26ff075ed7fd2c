"""The transfer datasets in their published layouts, built from the real answers.

``tests/fixtures/*_answers.jsonl`` hold the published answers of every MathVerse testmini
problem and every MMMU validation question (see tests/fixtures/README.md). These builders
write them as the Hub lays them out, with small stand-in PNGs for the images and stand-in
question texts (the real ones are not shipped):

- MathVerse: ``testmini.parquet``, or the Hub's conversion
  ``testmini/testmini/0000.parquet``; every problem in its five versions (3,940 rows), its
  ``question_for_eval`` a stand-in question followed by the real choices block;
- MMMU: ``<Subject>/validation-00000-of-00001.parquet``, or the conversion
  ``<Subject>/validation/0000.parquet``; options as the Python-literal string the Hub has,
  a list gold as the string of its list, images wherever the question or an option names
  one.

``answer_key`` gives each item's reply in the form our prompts ask for: the letter(s) of a
choice, MathVerse's free-form answers as our bare value (the fixture's ``reply``), MMMU's
open answers as published.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pyarrow as pa

from crossmath.tasks import TaskItem
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE
from tests.hub_files import IMAGE, numbered_png, write_parquet

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MATHVERSE_ANSWERS = FIXTURES / "mathverse_testmini_answers.jsonl"
MMMU_ANSWERS = FIXTURES / "mmmu_validation_answers.jsonl"
HUB, CONVERTED = "hub", "converted"  # the dataset's own layout, and the Hub's conversion

MATHVERSE_VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant",
                      "Vision Only")  # in sample_index order within a problem
MATHVERSE_METADATA = pa.struct([("split", pa.string()), ("source", pa.string()),
                                ("subject", pa.string()), ("subfield", pa.string())])
MATHVERSE_SCHEMA = pa.schema([
    ("sample_index", pa.string()), ("problem_index", pa.string()),
    ("problem_version", pa.string()), ("question", pa.string()), ("image", IMAGE),
    ("answer", pa.string()), ("question_type", pa.string()), ("metadata", MATHVERSE_METADATA),
    ("query_wo", pa.string()), ("query_cot", pa.string()), ("question_for_eval", pa.string()),
])
MMMU_SCHEMA = pa.schema([
    ("id", pa.string()), ("question", pa.string()), ("options", pa.string()),
    ("explanation", pa.string()), *[(f"image_{n}", IMAGE) for n in range(1, 8)],
    ("img_type", pa.string()), ("answer", pa.string()), ("topic_difficulty", pa.string()),
    ("question_type", pa.string()), ("subfield", pa.string()),
])
MMMU_IMAGE_TYPES = ("['Diagrams']", "['Tables']", "['Photographs', 'Paintings']",
                    "['Plots and Charts']", "['Chemical Structures', 'Diagrams']")
_IMAGE_TAG = re.compile(r"<image (\d+)>")


def read_fixture(path: Path) -> tuple[dict, list[dict]]:
    """A fixture file's header and rows."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return lines[0]["header"], lines[1:]


@cache
def mathverse_problems() -> tuple[dict, ...]:
    return tuple(read_fixture(MATHVERSE_ANSWERS)[1])


@cache
def mmmu_questions() -> tuple[dict, ...]:
    return tuple(read_fixture(MMMU_ANSWERS)[1])


def vision_only_index(problem: dict) -> str:
    """The ``sample_index`` of a problem's Vision Only row: five rows per problem, in
    ``MATHVERSE_VERSIONS`` order (MathVerse's output template: problem 685 is 3421-3425)."""
    return str(5 * (int(problem["problem_index"]) - 1) + len(MATHVERSE_VERSIONS))


def mathverse_rows(problems=None) -> list[dict]:
    """Every version of every problem as a ``testmini.parquet`` row."""
    rows, shared_image = [], numbered_png(0)
    for problem in problems or mathverse_problems():
        index = int(problem["problem_index"])
        question = f"Stand-in for the question of MathVerse problem {index}."
        if "choices" in problem:
            question += "\n" + problem["choices"]
        for offset, version in enumerate(MATHVERSE_VERSIONS, start=1):
            vision_only = version == "Vision Only"
            image = numbered_png(index) if vision_only else shared_image
            rows.append({
                "sample_index": str(5 * (index - 1) + offset), "problem_index": str(index),
                "problem_version": version, "question": "" if vision_only else question,
                "image": {"bytes": image, "path": f"images_version/image_{index}.png"},
                "answer": problem["answer"], "question_type": problem["question_type"],
                "metadata": {"split": "testmini", "source": problem["source"],
                             "subject": problem["subject"], "subfield": problem["subfield"]},
                "query_wo": "official prompt, unused", "query_cot": "official prompt, unused",
                "question_for_eval": question,
            })
    return rows


def write_mathverse(folder: Path, layout: str = HUB, problems=None) -> Path:
    """MathVerse's testmini in ``layout``; returns the dataset's root folder."""
    relative = "testmini.parquet" if layout == HUB else "testmini/testmini/0000.parquet"
    write_parquet(folder / relative, mathverse_rows(problems), MATHVERSE_SCHEMA)
    return folder


def mmmu_rows(question: dict, number: int) -> dict:
    """One MMMU validation question as a parquet row (``number`` makes its images unique)."""
    options = question.get("options", [])
    named = {1, *(int(n) for option in options for n in _IMAGE_TAG.findall(option)
                  if int(n) <= 7)}  # a row has seven image columns
    gold = question["ground_truth"]
    kind = "multiple-choice" if question["question_type"] == "multiple-choice" else "open"
    return {
        "id": question["id"], "question": f"<image 1> Stand-in for question {question['id']}.",
        "options": repr(options), "explanation": "",
        **{f"image_{n}": ({"bytes": numbered_png(8 * number + n), "path": f"{n}.png"}
                          if n in named else None) for n in range(1, 8)},
        "img_type": MMMU_IMAGE_TYPES[number % len(MMMU_IMAGE_TYPES)],
        "answer": gold if isinstance(gold, str) else repr(gold),
        "topic_difficulty": "Medium", "question_type": kind, "subfield": "Stand-in",
    }


def write_mmmu(folder: Path, layout: str = HUB, questions=None) -> Path:
    """MMMU's validation split in ``layout``, one file per subject; returns the root."""
    by_subject: dict[str, list[dict]] = {}
    for number, question in enumerate(questions or mmmu_questions(), start=1):
        subject = question["id"].split("_", 1)[1].rsplit("_", 1)[0]
        by_subject.setdefault(subject, []).append(mmmu_rows(question, number))
    name = "validation-00000-of-00001.parquet" if layout == HUB else "validation/0000.parquet"
    for subject, rows in by_subject.items():
        write_parquet(folder / subject / name, rows, MMMU_SCHEMA)
    return folder


def answer_key(items: list[TaskItem]) -> dict[str, str]:
    """Item id -> the answer our prompt asks for: the letter(s) of a choice (several joined
    by ", "), MathVerse's bare free-form value, MMMU's first accepted open answer."""
    bare = {vision_only_index(problem): problem["reply"] for problem in mathverse_problems()
            if "reply" in problem}
    return {item.item_id: (", ".join(item.gold) if item.question_type == MULTIPLE_CHOICE
                           else bare.get(item.item_id, item.gold[0]))
            for item in items}
