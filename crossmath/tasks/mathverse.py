"""MathVerse testmini, "Vision Only": 788 problems whose whole question is drawn in the image.

MathVerse (Zhang et al., 2024; Hub dataset ``AI4Math/MathVerse``, MIT licence) shows each
of its testmini problems in five versions that move information from the text into the
diagram. In the "Vision Only" version the question text is empty: the question, its numbers
and, for multiple choice, the choices are all in the picture. So our prompt carries only the
instruction (ours; see below) and the image, and nothing of the problem itself.

Published layout: ``testmini.parquet``, one row per (problem, version), with ``sample_index``
(our item id), ``problem_index``, ``problem_version``, ``question`` (empty here), ``image``
(the ``Image`` struct), ``answer`` (an option letter, or the free-form answer),
``question_type`` (``multi-choice`` | ``free-form``), ``metadata`` (a struct of ``split``,
``source``, ``subject``, ``subfield``), ``query_wo`` / ``query_cot`` (the official prompts,
unused) and ``question_for_eval`` (the full question in words, read for the option texts).

Scoring is by rule, not by the official GPT judge: a choice by its letter (``choices``), a
free-form answer by ``freeform``'s numeric and text rules. docs/transfer.md says where that
differs from the official scores.
"""

from __future__ import annotations

import re

from crossmath.models.base import Prompt
from crossmath.tasks.freeform import answers_match, read_free_form
from crossmath.tasks.item import MULTIPLE_CHOICE, OPEN, Judgement, TaskItem
from crossmath.tasks.published import ParquetRow
from crossmath.tasks.task import (
    TransferTask,
    judge_choice,
    option_letters,
    read_question_type,
)

VISION_ONLY = "Vision Only"
QUESTION_TYPES = {"multi-choice": MULTIPLE_CHOICE, "free-form": OPEN}
DEFAULT_LETTERS = 4  # when the choices are not written out in question_for_eval

CHOICE_INSTRUCTION = (
    "The image shows a math problem with its answer choices. Read everything in the image "
    "carefully and solve the problem; you may reason step by step. End your reply with the "
    "letter of the correct choice alone inside answer tags, for example <answer>B</answer>."
)
OPEN_INSTRUCTION = (
    "The image shows a math problem. Read everything in the image carefully and solve the "
    "problem; you may reason step by step. End your reply with the final answer alone inside "
    "answer tags, for example <answer>12.5</answer>: a number or a short expression, without "
    "units."
)

_CHOICES_HEADER = re.compile(r"\bchoices?\s*[:：]", re.IGNORECASE)
# An option's letter where a choice starts: "A:", "B.", "(C)", "D)" at a line start or
# after a space.
_OPTION_MARK = re.compile(r"(?:^|(?<=\s))\(?([A-Z])\s*[:.)：]", re.MULTILINE)
_LETTER = re.compile(r"[A-Z]")


class MathVerseVision(TransferTask):
    name = "mathverse-vision"
    hub_repo = "AI4Math/MathVerse"
    hub_patterns = ("testmini.parquet",)
    file_pattern = "testmini.parquet"
    path_hint = "/path/to/MathVerse (the folder holding testmini.parquet, or the file)"
    columns = ("sample_index", "question_type", "answer", "image", "metadata")
    optional_columns = ("question_for_eval",)
    row_filter = ("problem_version", VISION_ONLY)

    def item(self, row: ParquetRow) -> TaskItem:
        image = row.image("image")
        if image is None:
            raise row.error("a Vision Only problem needs its image", "image")
        question_type = read_question_type(row, QUESTION_TYPES)
        answer = row.text("answer").strip()
        if not answer:
            raise row.error("the answer is empty", "answer")
        options: tuple[tuple[str, str], ...] = ()
        if question_type == MULTIPLE_CHOICE:
            if not _LETTER.fullmatch(answer):
                raise row.error(f"a multiple-choice answer must be one letter, not {answer!r}",
                                "answer")
            options = choice_options(row.values.get("question_for_eval") or "", answer)
        instruction = CHOICE_INSTRUCTION if question_type == MULTIPLE_CHOICE else OPEN_INSTRUCTION
        return TaskItem(
            task=self.name,
            item_id=row.text("sample_index"),
            prompt=Prompt((instruction,), (image,), (0,)),
            gold=(answer,),
            question_type=question_type,
            options=options,
            breakdown={name: row.field("metadata", name)
                       for name in ("subject", "subfield", "source")},
        )

    def judge(self, item: TaskItem, output: str) -> Judgement:
        if item.question_type == MULTIPLE_CHOICE:
            return judge_choice(item, output)
        answer = read_free_form(output)
        correct = answer is not None and any(answers_match(answer, gold) for gold in item.gold)
        return Judgement(answer, correct)


def choice_options(question: str, answer: str) -> tuple[tuple[str, str], ...]:
    """The (letter, text) choices written after "Choices:" in the question, A first and in
    order, one a line or several on one line (a choice's text ends with its line).

    When the question does not write them out, or what it writes does not include the gold
    letter (a format we do not read), the letters are A-D, through the gold letter if it is
    later, without text: the gold is always a letter a reply can give.
    """
    header = _CHOICES_HEADER.search(question)
    options: list[tuple[str, str]] = []
    if header:
        listed = question[header.end():]
        marks = []
        for mark in _OPTION_MARK.finditer(listed):
            if mark.group(1) == chr(ord("A") + len(marks)):  # another capital is option text
                marks.append(mark)
        ends = [mark.start() for mark in marks[1:]] + [len(listed)]
        options = [(mark.group(1), listed[mark.end():end].split("\n", 1)[0].strip())
                   for mark, end in zip(marks, ends)]
    if answer in dict(options):
        return tuple(options)
    count = max(DEFAULT_LETTERS, ord(answer) - ord("A") + 1)
    return tuple((letter, "") for letter in option_letters(count))
