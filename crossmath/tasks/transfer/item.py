"""One question of a transfer task, finished for a model, and how an answer to it was judged.

A ``TaskItem`` is everything a run needs about a question: its stable id in the dataset, the
finished ``Prompt`` (texts and images in the order the model sees them), the gold answer(s),
the question type, the option letters of a multiple-choice question (with their texts when
the dataset gives them), the fields results are broken down by (subject, subfield, ...) and
the dataset's own fields an official scoring reads (MathVerse's judge: the question and the
answer as published).

``content_key`` is a hash of the prompt itself (every text part, every image's bytes, and
where each image stands), so a changed wording or a re-encoded image is a different request,
and a backend that sees only the prompt can compute the same key (the answer-key test double
does).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Mapping

from crossmath.models.base import Prompt

QuestionType = Literal["multiple-choice", "open"]
MULTIPLE_CHOICE: QuestionType = "multiple-choice"
OPEN: QuestionType = "open"
QUESTION_TYPES: tuple[QuestionType, ...] = (MULTIPLE_CHOICE, OPEN)


def prompt_key(prompt: Prompt) -> str:
    """A stable hash of a prompt's parts in order: texts by content, images by their bytes.

    Each part is written with its kind and length, so no two different prompts share a
    serialisation (moving text across an image boundary changes the key).
    """
    digest = hashlib.sha256()
    for part in prompt.parts():
        if isinstance(part, str):
            data, kind = part.encode("utf-8"), b"t"
        else:
            data, kind = hashlib.sha256(part).digest(), b"i"
        digest.update(kind + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class TaskItem:
    """One question of a task, ready to ask.

    ``gold`` holds, for an open question, every accepted answer (MMMU lists several for a
    few: any of them counts); for a multiple-choice question, the letter of every correct
    option (one for nearly all; MathVerse has two with two correct options, and then both
    must be chosen, no other). ``options`` pairs each option letter with its text ("" where
    the text is only in the image); ``breakdown`` maps field name to value for per-group
    accuracy, or to several values (an MMMU question showing a table and a photograph counts
    in both groups of ``img_type``); ``official_fields`` holds what an official scoring reads
    of the dataset's own row.
    """

    task: str
    item_id: str
    prompt: Prompt
    gold: tuple[str, ...]
    question_type: QuestionType
    options: tuple[tuple[str, str], ...] = ()
    breakdown: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    official_fields: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.question_type not in QUESTION_TYPES:
            raise ValueError(f"{self.task} item {self.item_id}: question type "
                             f"{self.question_type!r} is not one of {QUESTION_TYPES}")
        if not self.gold:
            raise ValueError(f"{self.task} item {self.item_id}: no gold answer")
        if self.question_type == MULTIPLE_CHOICE and not set(self.gold) <= set(self.letters):
            raise ValueError(f"{self.task} item {self.item_id}: gold {list(self.gold)} is not "
                             f"among the option letters {list(self.letters)}")

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(letter for letter, _ in self.options)

    @property
    def several_correct(self) -> bool:
        """A multiple-choice question whose every one of several correct options must be
        chosen."""
        return self.question_type == MULTIPLE_CHOICE and len(self.gold) > 1

    @cached_property
    def content_key(self) -> str:
        """The hash of this item's prompt: what shapes the request a model is sent."""
        return prompt_key(self.prompt)

    def to_row(self) -> dict[str, Any]:
        """The item as plain data (lists, strings, bytes), for Arrow tables and Ray Data rows;
    the breakdown and the official fields as JSON text (their values vary in kind)."""
        return {
            "task": self.task,
            "item_id": self.item_id,
            "prompt_texts": list(self.prompt.texts),
            "images": list(self.prompt.images),
            "image_at": list(self.prompt.image_at),
            "gold": list(self.gold),
            "question_type": self.question_type,
            "option_letters": list(self.letters),
            "option_texts": [text for _, text in self.options],
            "breakdown": json.dumps(dict(self.breakdown), sort_keys=True),
            "official_fields": json.dumps(dict(self.official_fields), sort_keys=True),
            "content_key": self.content_key,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "TaskItem":
        """The item back from :meth:`to_row`'s fields (extra fields of the row are ignored)."""
        return cls(
            task=row["task"],
            item_id=row["item_id"],
            prompt=Prompt(tuple(row["prompt_texts"]), tuple(row["images"]),
                          tuple(row["image_at"])),
            gold=tuple(row["gold"]),
            question_type=row["question_type"],
            options=tuple(zip(row["option_letters"], row["option_texts"])),
            breakdown={name: tuple(value) if isinstance(value, list) else value
                       for name, value in json.loads(row["breakdown"]).items()},
            official_fields=json.loads(row["official_fields"]),
        )


@dataclass(frozen=True)
class Judgement:
    """How one reply to one item was read and judged, under one scoring.

    ``answer`` is what was read as the reply's final answer (an option letter, letters
    joined by ", ", or the answer text), None when nothing could be read. ``answered`` says
    whether the reply committed to an answer at all (by default: whether one was read; an
    open answer read from a whole reply without a final answer span commits only in the
    ways docs/transfer.md lists). ``chance`` is set where the scoring did not read the answer
    but guessed it, as MMMU's official parser does: the probability that its guess was right.
    """

    answer: str | None
    correct: bool
    answered: bool | None = None
    chance: float | None = None

    def __post_init__(self) -> None:
        if self.answered is None:
            object.__setattr__(self, "answered", bool(self.answer))

    @property
    def expected(self) -> float:
        """The correctness to expect over the scoring's guesses: ``chance`` where it guessed."""
        return float(self.correct) if self.chance is None else self.chance


NO_ANSWER = Judgement(None, False)  # a failed request, or a reply that commits to nothing


@dataclass(frozen=True)
class Reply:
    """One sample of a model's reply to an item; ``output`` None when the request failed."""

    item: TaskItem
    sample: int
    output: str | None
