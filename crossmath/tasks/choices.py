"""Reading the option letter a reply chose, for every multiple-choice question of every task.

Only the question's own letters count (a "E" is no answer to a question with options A-D).
With a final answer span (see ``final_answer``) the letter is, in this order:

1. the letter the span starts with: ``B``, ``(B)``, ``B.``, ``B)``, ``B: 40°``, ``Option B``;
2. otherwise the last letter the span mentions on its own (``\\text{C}``, "C is correct");
3. otherwise the option whose text the span repeats (``<answer>40°</answer>`` for "B: 40°").

Without a span, the reply's last explicit letter mention counts: a bracketed ``(C)``,
"option C" / "choice C", a line holding only the letter (``**C**``), or a reply that starts
with ``C.``. A bare capital inside running text ("so the vertex C ...") is not read as an
answer, and neither is the article "A" or the pronoun "I" ("A triangle", "I think").
Nothing found means no answer, which scores wrong: no letter is ever guessed.
"""

from __future__ import annotations

import re
from typing import Sequence

from crossmath.metrics.answers import strip_thinking
from crossmath.tasks.final_answer import final_answer_span

_LEADING = re.compile(
    r"^(?:(?i:option|choice|letter)\s*)?[(\[]?([A-Z])[)\]]?(?=$|[.:,;)\]]|\s+[^a-z\s])")
_MENTION = re.compile(r"(?<![A-Za-z0-9])[(\[{]?([A-Z])[)\]}]?(?![A-Za-z0-9])")
_WORD_AFTER = re.compile(r"\s+[a-z]")
_BRACKETED = re.compile(r"\(([A-Z])\)")
_NAMED = re.compile(r"\b(?i:option|choice)\s*[(\[]?([A-Z])\b")
_ALONE_ON_LINE = re.compile(r"^[\W_]*([A-Z])[\W_]*$", re.MULTILINE)
_SPACES = re.compile(r"\s+")


def read_choice(output: str, options: Sequence[tuple[str, str]]) -> str | None:
    """The option letter a reply chose among ``options`` (letter, text), or None."""
    letters = {letter for letter, _ in options}
    span = final_answer_span(output)
    if span is not None:
        return choice_in_span(span, options)
    return _last_explicit_mention(strip_thinking(output), letters)


def choice_in_span(span: str, options: Sequence[tuple[str, str]]) -> str | None:
    """The option letter a final answer span names, or None."""
    letters = {letter for letter, _ in options}
    leading = _LEADING.match(span.strip())
    if leading and leading.group(1) in letters:
        return leading.group(1)
    mentions = [letter for letter, _ in _mentions(span) if letter in letters]
    if mentions:
        return mentions[-1]
    return _option_with_text(span, options)


def _mentions(text: str) -> list[tuple[str, int]]:
    """Capital letters standing alone, with their positions; words "A" and "I" left out."""
    found = []
    for match in _MENTION.finditer(text):
        letter = match.group(1)
        if letter in "AI" and _WORD_AFTER.match(text, match.end()):
            continue
        found.append((letter, match.start()))
    return found


def _option_with_text(span: str, options: Sequence[tuple[str, str]]) -> str | None:
    """The one option whose (non-empty) text the span is, spaces and case aside."""
    wanted = _squash(span)
    matching = [letter for letter, text in options if text.strip() and _squash(text) == wanted]
    return matching[0] if len(matching) == 1 else None


def _squash(text: str) -> str:
    return _SPACES.sub("", text).lower()


def _last_explicit_mention(reply: str, letters: set[str]) -> str | None:
    """The last letter a reply names explicitly, by position; None if it names none."""
    candidates = [
        (match.start(1), match.group(1))
        for pattern in (_BRACKETED, _NAMED, _ALONE_ON_LINE)
        for match in pattern.finditer(reply)
    ]
    leading = _LEADING.match(reply.strip())
    if leading:
        candidates.append((-1, leading.group(1)))
    chosen = [(position, letter) for position, letter in candidates if letter in letters]
    return max(chosen)[1] if chosen else None
