"""MMMU validation: 900 college-level questions (30 subjects x 30) over one to seven images.

MMMU (Yue et al., 2024; Hub dataset ``MMMU/MMMU``, Apache-2.0 licence) publishes one config
per subject, each with a ``validation`` split: ``<Subject>/validation-00000-of-00001.parquet``
(or, in the Hub's conversion, ``<Subject>/validation/0000.parquet``).
Columns: ``id`` (``validation_<Subject>_<n>``, our item id), ``question``, ``options`` (a
string holding a Python-literal list, ``"[]"`` for open questions), ``explanation``,
``image_1`` .. ``image_7`` (``Image`` structs, null where unused), ``img_type`` (a string
holding a list: ``"['Tables', 'Photographs']"``; the item counts in each group), ``answer`` (an
option letter, or the open answer; a few open answers are a list of accepted answers written
as a string, read as a Python literal or, failing that, split at its commas),
``topic_difficulty``, ``question_type`` (``multiple-choice`` | ``open``) and ``subfield``.

The question and the options say where each image belongs (``<image 2>``); the prompt puts
image n at every place that names it, in order, between the text around it. An image the
text never names is shown first. Options are listed as ``A. text`` lines under the question,
then our instruction (below) asks for the answer in answer tags.

Multiple-choice replies are read by letter (``transfer.choices``); open ones by MMMU's own
rule-based matching (``open``). Where MMMU's evaluation picks a random option for a reply it
cannot parse, the ``rule`` scoring scores the reply wrong: the same reply always gets the same
score. The ``official`` scoring is MMMU's own, random pick included (``official``).
"""

from __future__ import annotations

import ast
import re
from typing import Mapping, Sequence

from crossmath.models.base import Prompt
from crossmath.tasks.mmmu.official import official_verdicts
from crossmath.tasks.mmmu.open import judge_open
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE, OPEN, Judgement, Reply, TaskItem
from crossmath.tasks.transfer.published import ParquetRow
from crossmath.tasks.transfer.task import (
    TransferTask,
    judge_choice,
    option_letters,
    read_question_type,
)

IMAGE_COLUMNS = tuple(f"image_{n}" for n in range(1, 8))
QUESTION_TYPES = {"multiple-choice": MULTIPLE_CHOICE, "open": OPEN}
DISCIPLINES = {  # MMMU's six disciplines and their 30 subjects, as MMMU groups them
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": ("Basic_Medical_Science", "Clinical_Medicine",
                            "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health"),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science",
                             "Electronics", "Energy_and_Power", "Materials",
                             "Mechanical_Engineering"),
}
SUBJECT_DISCIPLINE = {subject: discipline for discipline, subjects in DISCIPLINES.items()
                      for subject in subjects}

CHOICE_INSTRUCTION = (
    "Answer the question above, using the image(s) shown with it; you may reason step by "
    "step. End your reply with the letter of the correct option alone inside answer tags, for "
    "example <answer>C</answer>."
)
OPEN_INSTRUCTION = (
    "Answer the question above, using the image(s) shown with it; you may reason step by "
    "step. End your reply with the final answer alone inside answer tags, for example "
    "<answer>42</answer>: a number, a word or a short phrase."
)

_ID = re.compile(r"^(?:dev|validation|test)_(.+)_\d+$")
_IMAGE_TAG = re.compile(r"<image (\d+)>")


class MmmuValidation(TransferTask):
    name = "mmmu-val"
    hub_repo = "MMMU/MMMU"
    hub_patterns = ("*/validation-*.parquet",)
    file_patterns = ("validation-*.parquet", "validation/*.parquet")
    path_hint = ("/path/to/MMMU (the folder holding <Subject>/validation-*.parquet or "
                 "<Subject>/validation/0000.parquet, or one file)")
    columns = ("id", "question", "options", "answer", "question_type", "subfield",
               "topic_difficulty", "img_type", *IMAGE_COLUMNS)

    def item(self, row: ParquetRow) -> TaskItem:
        item_id = row.text("id")
        match = _ID.match(item_id)
        if match is None or match.group(1) not in SUBJECT_DISCIPLINE:
            raise row.error(f"{item_id!r} is not validation_<Subject>_<n> with one of MMMU's "
                            "30 subjects", "id")
        question_type = read_question_type(row, QUESTION_TYPES)
        texts = _literal_strings(row, "options")
        if texts is None:
            raise row.error("expected a Python-literal list of strings", "options")
        gold = _gold(row)
        options: tuple[tuple[str, str], ...] = ()
        text = row.text("question").strip()
        if question_type == MULTIPLE_CHOICE:
            options = tuple(zip(option_letters(len(texts)), texts))
            if not options or not set(gold) <= set(dict(options)):
                raise row.error(f"the answer {list(gold)} is not among the option letters "
                                f"{list(dict(options))}", "answer")
            text += "\n\n" + "\n".join(f"{letter}. {option}" for letter, option in options)
        instruction = CHOICE_INSTRUCTION if question_type == MULTIPLE_CHOICE else OPEN_INSTRUCTION
        images = {n: row.image(column) for n, column in enumerate(IMAGE_COLUMNS, start=1)}
        subject = match.group(1)
        return TaskItem(
            task=self.name,
            item_id=item_id,
            prompt=interleave(f"{text}\n\n{instruction}", images, row),
            gold=gold,
            question_type=question_type,
            options=options,
            breakdown={
                "subject": subject,
                "discipline": SUBJECT_DISCIPLINE[subject],
                "subfield": row.text("subfield"),
                "topic_difficulty": row.text("topic_difficulty"),
                "img_type": _image_types(row.text("img_type")),
            },
        )

    def judge(self, item: TaskItem, output: str) -> Judgement:
        if item.question_type == MULTIPLE_CHOICE:
            return judge_choice(item, output)
        return judge_open(output, item.gold)

    def official(self, replies: Sequence[Reply]) -> list[Judgement]:
        return official_verdicts(replies)


def interleave(text: str, images: Mapping[int, bytes | None], row: ParquetRow) -> Prompt:
    """The prompt with image n standing wherever the text says ``<image n>``.

    Text around the tags is kept (stripped of surrounding blank space); an image the text
    never names stands first. A tag naming one of the row's image columns that is empty is an
    error; a tag beyond them (validation_Math_7's options name images 7 to 30, the row has
    seven) stays in the text as written.
    """
    texts: list[str] = []
    shown: list[bytes] = []
    image_at: list[int] = []
    named: set[int] = set()
    pending = ""
    for index, piece in enumerate(_IMAGE_TAG.split(text)):
        if index % 2 == 0:
            pending += piece
            continue
        number = int(piece)
        if number not in images:
            pending += f"<image {number}>"
            continue
        image = images[number]
        if image is None:
            raise row.error(f"the text names <image {number}>, which the row does not have",
                            f"image_{number}")
        if pending.strip():
            texts.append(pending.strip())
        pending = ""
        shown.append(image)
        image_at.append(len(texts))
        named.add(number)
    if pending.strip():
        texts.append(pending.strip())
    unnamed = [image for number, image in sorted(images.items())
               if image is not None and number not in named]
    return Prompt(tuple(texts), (*unnamed, *shown), (0,) * len(unnamed) + tuple(image_at))


def _gold(row: ParquetRow) -> tuple[str, ...]:
    """The accepted answers: the answer itself, or each of a list of them written as a
    string (a Python literal, or failing that its comma-separated entries, quotes dropped)."""
    answer = row.text("answer").strip()
    gold = _listed(answer) if answer.startswith("[") and answer.endswith("]") else (answer,)
    if not gold or not all(gold):
        raise row.error(f"empty answer in {answer!r}", "answer")
    return gold


def _listed(text: str) -> tuple[str, ...]:
    """The entries of a list written as a string, each stripped."""
    value = _literal(text)
    if isinstance(value, list) and all(isinstance(entry, (str, int, float)) for entry in value):
        return tuple(str(entry).strip() for entry in value)
    return tuple(entry.strip().strip("'\"").strip() for entry in text[1:-1].split(","))


def _image_types(text: str) -> tuple[str, ...]:
    """``img_type``'s image types: the entries of its list, or the text itself as one."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return tuple(entry for entry in _listed(text) if entry) or (text,)
    return (text,)


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _literal_strings(row: ParquetRow, column: str) -> list[str] | None:
    """A column's Python-literal list of strings, or None if it holds something else."""
    value = _literal(row.text(column))
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        return None
    return value
