"""MathVerse testmini, "Vision Only": 788 problems whose whole question is drawn in the image.

MathVerse (Zhang et al., 2024; Hub dataset ``AI4Math/MathVerse``, MIT licence) shows each
of its testmini problems in five versions that move information from the text into the
diagram. In the "Vision Only" version the question text is empty: the question, its numbers
and, for multiple choice, the choices are all in the picture. So our prompt carries only the
instruction (ours; see below) and the image, and nothing of the problem itself.

Published layout: ``testmini.parquet`` (or the Hub's conversion,
``testmini/testmini/0000.parquet``), one row per (problem, version), with ``sample_index``
(our item id), ``problem_index``, ``problem_version``, ``question`` (empty here), ``image``
(the ``Image`` struct), ``answer``, ``question_type`` (``multi-choice`` | ``free-form``),
``metadata`` (a struct of ``split``, ``source``, ``subject``, ``subfield``), ``query_wo`` /
``query_cot`` (the official prompts, unused) and ``question_for_eval`` (the full question in
words: read for the choices, and shown to the official judge).

A multiple-choice answer is published as a letter (``C``), a bracketed letter (``(C)``),
several letters one a line (``C\nD``: every one of them must be chosen) or the text of an
option (``False``, ``090^\\circ T``), which is read as that option's letter. The choices come
from ``question_for_eval`` (``choice_options``). Scoring by rule: a choice by its letter(s)
(``transfer.choices``), a free-form answer by ``transfer.freeform``'s rules. The official
scoring is MathVerse's two-stage judge (``judge``), run by a model of the user's choice in two
more rounds of the same pipeline (``rounds``).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from crossmath.models.base import Prompt
from crossmath.tasks.mathverse.judge import load_judge_prompts
from crossmath.tasks.mathverse.rounds import Judge
from crossmath.tasks.questions import AskContext
from crossmath.tasks.transfer.freeform import answers_match, read_free_form
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE, OPEN, Judgement, TaskItem
from crossmath.tasks.transfer.published import ParquetRow
from crossmath.tasks.transfer.task import (
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
SEVERAL_INSTRUCTION = (
    "The image shows a math problem with its answer choices; more than one choice is correct. "
    "Read everything in the image carefully and solve the problem; you may reason step by "
    "step. End your reply with the letters of all the correct choices, separated by commas, "
    "alone inside answer tags, for example <answer>A, C</answer>."
)
OPEN_INSTRUCTION = (
    "The image shows a math problem. Read everything in the image carefully and solve the "
    "problem; you may reason step by step. End your reply with the final answer alone inside "
    "answer tags, for example <answer>12.5</answer>: a number or a short expression, without "
    "units."
)

_CHOICES_HEADER = re.compile(r"\bchoices?\s*[:：]", re.IGNORECASE)
# An option's letter where a choice starts: "A:", "B.", "(C)", "D)" at a line start or
# after a space; without a "Choices:" header also right after a full stop ("...equation.A.").
_OPTION_MARK = re.compile(r"(?:^|(?<=\s))\(?([A-Z])\s*[:.)：]", re.MULTILINE)
_INLINE_MARK = re.compile(r"(?:^|(?<=[\s.?;]))\(?([A-Z])\s*[:.)：]", re.MULTILINE)
_ONE_LETTER = re.compile(r"^\(?([A-Z])\)?$")
_LETTER_LIST = re.compile(r"^[A-Z](?:\s*(?:\n|,|;|&|\band\b)\s*[A-Z])+$")
_SPACES = re.compile(r"\s+")


class MathVerseVision(TransferTask):
    name = "mathverse-vision"
    hub_repo = "AI4Math/MathVerse"
    hub_patterns = ("testmini.parquet",)
    file_patterns = ("testmini.parquet", "testmini/testmini/*.parquet")
    path_hint = ("/path/to/MathVerse (the folder holding testmini.parquet or "
                 "testmini/testmini/0000.parquet, or the file)")
    columns = ("sample_index", "question_type", "answer", "image", "metadata")
    optional_columns = ("question_for_eval", "question")
    row_filter = ("problem_version", VISION_ONLY)
    official_by_judge = True

    def item(self, row: ParquetRow) -> TaskItem:
        image = row.image("image")
        if image is None:
            raise row.error("a Vision Only problem needs its image", "image")
        question_type = read_question_type(row, QUESTION_TYPES)
        published = row.text("answer")
        answer = published.strip()
        if not answer:
            raise row.error("the answer is empty", "answer")
        question = _question(row)
        gold: tuple[str, ...] = (answer,)
        options: tuple[tuple[str, str], ...] = ()
        instruction = OPEN_INSTRUCTION
        if question_type == MULTIPLE_CHOICE:
            options = choice_options(question)
            letters = choice_gold(answer, options)
            if letters is None:
                raise row.error(f"the multiple-choice answer {answer!r} is neither option "
                                "letters nor the text of one option of question_for_eval",
                                "answer")
            gold = letters
            if not set(gold) <= {letter for letter, _ in options}:
                options = letters_without_text(gold)
            instruction = SEVERAL_INSTRUCTION if len(gold) > 1 else CHOICE_INSTRUCTION
        return TaskItem(
            task=self.name,
            item_id=row.text("sample_index"),
            prompt=Prompt((instruction,), (image,), (0,)),
            gold=gold,
            question_type=question_type,
            options=options,
            breakdown={name: row.field("metadata", name)
                       for name in ("subject", "subfield", "source")},
            official_fields={"question": question, "answer": published},
        )

    def judge(self, item: TaskItem, output: str) -> Judgement:
        if item.question_type == MULTIPLE_CHOICE:
            return judge_choice(item, output)
        answer = read_free_form(output)
        correct = answer is not None and any(answers_match(answer, gold) for gold in item.gold)
        return Judgement(answer, correct)

    def round_judge(self, options: Mapping[str, Any], context: AskContext) -> Judge | None:
        """The judge model of ``task.judge`` (any model config) with MathVerse's prompts
        (``task.judge_prompts``, or fetched at the pinned commit); None without one."""
        if options.get("judge") is None:
            return None
        model_config = dict(options["judge"])
        return Judge(model_config, context.identify(model_config),
                     load_judge_prompts(options.get("judge_prompts")))


def _question(row: ParquetRow) -> str:
    """The question in words: ``question_for_eval``, else ``question`` (empty in Vision
    Only), else nothing."""
    for column in ("question_for_eval", "question"):
        value = row.values.get(column)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def choice_options(question: str) -> tuple[tuple[str, str], ...]:
    """The (letter, text) choices a question writes, A first and in order: after its
    "Choices:" header (one a line or several on one line; a choice's text ends with its
    line), or, without a header, the last run of marks A, B, ... it writes inline
    ("... its equation.A. x^2 = 1 B. Can not determine."). Empty when it writes none."""
    header = _CHOICES_HEADER.search(question)
    if header:
        listed = question[header.end():]
        runs = _runs(_OPTION_MARK.finditer(listed), restart=False)
    else:
        listed = question
        runs = [run for run in _runs(_INLINE_MARK.finditer(listed), restart=True)
                if len(run) > 1]
    if not runs:
        return ()
    marks = runs[-1]
    ends = [mark.start() for mark in marks[1:]] + [len(listed)]
    return tuple((mark.group(1), listed[mark.end():end].split("\n", 1)[0].strip())
                 for mark, end in zip(marks, ends))


def _runs(marks: Iterable[re.Match], *, restart: bool) -> list[list[re.Match]]:
    """Marks in runs A, B, C, ...: an "A" starts a run (only the first one, unless
    ``restart``), the next letter extends it, any other capital is part of an option's
    text."""
    runs: list[list[re.Match]] = []
    for mark in marks:
        if mark.group(1) == "A" and (restart or not runs):
            runs.append([mark])
        elif runs and mark.group(1) == chr(ord("A") + len(runs[-1])):
            runs[-1].append(mark)
    return runs


def choice_gold(answer: str, options: tuple[tuple[str, str], ...]) -> tuple[str, ...] | None:
    """The gold letters of a published multiple-choice answer: ``C`` or ``(C)``, several
    letters (``C\nD``, ``A, C``), or the text of exactly one option; None otherwise."""
    one = _ONE_LETTER.match(answer)
    if one:
        return (one.group(1),)
    if _LETTER_LIST.match(answer):
        return tuple(dict.fromkeys(re.findall(r"[A-Z]", answer)))
    wanted = _squash(answer)
    matching = [letter for letter, text in options if text and _squash(text) == wanted]
    return (matching[0],) if len(matching) == 1 else None


def letters_without_text(gold: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Letters A-D (through the latest gold letter) without texts: the choices of a question
    that does not write them where we can read them."""
    count = max(DEFAULT_LETTERS, *(ord(letter) - ord("A") + 1 for letter in gold))
    return tuple((letter, "") for letter in option_letters(count))


def _squash(text: str) -> str:
    return _SPACES.sub("", text).lower()
