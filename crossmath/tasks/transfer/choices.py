"""Reading the option letter(s) a reply chose, for every multiple-choice question of every task.

Only the question's own letters count (a "E" is no answer to a question with options A-D).
With a final answer span (see ``final_answer``), in this order:

1. a list of letters (``C, D``, ``C and D``, ``(A) & (C)``, one a line): the letters of a
   question with several correct options; for a question with one, or naming a letter the
   question lacks, a list is no answer;
2. the letter the span starts with: ``B``, ``(B)``, ``B.``, ``B)``, ``B: 40°``, ``Option B``;
   a lower-case letter only when it is the whole span (``c``, ``(c)``, ``option c``);
3. otherwise the one letter the span names on its own (``\\text{C}``, "C is correct"); a span
   naming two different letters is no answer;
4. otherwise the option whose text the span is (``<answer>40°</answer>`` for "B: 40°",
   ``090°T`` for ``090^\\circ T``), or the one option whose text it contains.

Without a span, the reply's last explicit letter mention counts: a bracketed ``(C)``,
"option C" / "choice C", a line holding only the letter (``**C**``, ``c``), or a reply that
starts with ``C.``. Lines that restate the options (``A. Baroque``, ``B. Rococo`` when those
are options A and B; two or more of them) are not mentions. Without any mention, the one option whose text the reply writes
(word for word, case aside; "... suggest Impressionism.", "False.") is the answer; a reply
that writes the texts of several options names none. A bare capital inside running text
("so the vertex C ...") is not read as an answer, and neither is the article "A" or the
pronoun "I". Nothing found means no answer, which scores wrong: no letter is ever guessed.
"""

from __future__ import annotations

import re
from typing import Sequence

from crossmath.metrics.answers import strip_thinking
from crossmath.tasks.transfer.final_answer import final_answer_span
from crossmath.tasks.transfer.freeform import normalize_answer

Options = Sequence[tuple[str, str]]
LIST_SEPARATOR = ", "  # how several letters are written in a judgement's answer

_LEADING = re.compile(
    r"^(?:(?i:option|choice|letter)\s*)?[(\[]?([A-Z])[)\]]?(?=$|[.:,;)\]]|\s+[^a-z\s])")
_WHOLE_LETTER = re.compile(r"^(?:(?:option|choice|letter)\s*)?[(\[]?([a-z])[)\]]?\.?$",
                           re.IGNORECASE)
_LIST_ITEM = r"[(\[]?([A-Z])[)\]]?"
_LETTER_LIST = re.compile(rf"^(?:(?i:options?|choices?)\s*)?{_LIST_ITEM}"
                          rf"(?:\s*(?:,|;|&|/|\+|\band\b|\bor\b|\n)?\s*{_LIST_ITEM})+\.?$")
_LIST_LETTERS = re.compile(r"(?<![A-Za-z])[(\[]?([A-Z])[)\]]?(?![A-Za-z])")
_MENTION = re.compile(r"(?<![A-Za-z0-9])[(\[{]?([A-Z])[)\]}]?(?![A-Za-z0-9])")
_WORD_AFTER = re.compile(r"\s+[a-z]")
_BRACKETED = re.compile(r"\(([A-Z])\)")
_NAMED = re.compile(r"\b(?i:option|choice)\s*[(\[]?([A-Za-z])\b")
_ALONE_ON_LINE = re.compile(r"^[\W_]*([A-Za-z])[\W_]*$", re.MULTILINE)
_OPTION_LINE = re.compile(r"^\s*[(\[]?([A-Z])\s*[)\].:：]\s*(.*?)\s*$", re.MULTILINE)
_SPACES = re.compile(r"\s+")
_HAS_LETTER = re.compile(r"[A-Za-z]")


def read_choice(output: str, options: Options, *, several: bool = False) -> str | None:
    """The option letter a reply chose among ``options`` (letter, text), or None; with
    ``several`` (a question with more than one correct option), the letters it chose,
    joined by ``LIST_SEPARATOR`` in the order of the options."""
    span = final_answer_span(output)
    if span is not None:
        return choice_in_span(span, options, several=several)
    reply = _without_restated_options(strip_thinking(output), options)
    letters = {letter for letter, _ in options}
    return _last_explicit_mention(reply, letters) or _option_in_prose(reply, options)


def choice_in_span(span: str, options: Options, *, several: bool = False) -> str | None:
    """The option letter(s) a final answer span names, or None."""
    letters = [letter for letter, _ in options]
    span = span.strip()
    listed = _letter_list(span)
    if listed is not None:  # a list naming a letter the question lacks is no answer either
        chosen = [letter for letter in letters if letter in listed]
        return LIST_SEPARATOR.join(chosen) if several and len(chosen) == len(listed) else None
    leading = _LEADING.match(span) or _WHOLE_LETTER.match(span)
    if leading and leading.group(1).upper() in letters:
        return leading.group(1).upper()
    mentioned = {letter for letter, _ in _mentions(span) if letter in letters}
    if len(mentioned) == 1:
        return mentioned.pop()
    if mentioned:
        return None
    return _option_with_text(span, options)


def _letter_list(span: str) -> set[str] | None:
    """The two or more different letters a span lists (``C, D``, ``C and D``); else None."""
    if not _LETTER_LIST.match(span):
        return None
    named = set(_LIST_LETTERS.findall(span))
    return named if len(named) > 1 else None


def _mentions(text: str) -> list[tuple[str, int]]:
    """Capital letters standing alone, with their positions; words "A" and "I" left out."""
    found = []
    for match in _MENTION.finditer(text):
        letter = match.group(1)
        if letter in "AI" and _WORD_AFTER.match(text, match.end()):
            continue
        found.append((letter, match.start()))
    return found


def _option_with_text(span: str, options: Options) -> str | None:
    """The option whose text the span is (written as ``freeform`` normalises answers:
    spacing, case, ``$``, degree signs aside), else the one option whose text the span
    contains."""
    wanted = normalize_answer(span)
    matching = [letter for letter, text in options
                if text.strip() and normalize_answer(text) == wanted]
    if len(matching) == 1:
        return matching[0]
    return _option_in_prose(span, options)


def _option_in_prose(text: str, options: Options) -> str | None:
    """The one option whose text (at least three characters, with a letter) ``text`` writes
    as words of its own, case aside; an option whose text is part of another's found text
    does not count apart."""
    found = [(letter, option) for letter, option in options
             if len(option.strip()) >= 3 and _HAS_LETTER.search(option)
             and re.search(rf"(?<!\w){re.escape(option.strip())}(?!\w)", text, re.IGNORECASE)]
    found = [(letter, option) for letter, option in found
             if not any(option.lower() != other.lower() and option.lower() in other.lower()
                        for _, other in found)]
    return found[0][0] if len(found) == 1 else None


def _without_restated_options(reply: str, options: Options) -> str:
    """The reply without the lines that restate options (letter and text), when it restates
    two or more: a list of the options, not a choice among them."""
    texts = {letter: _squash(text) for letter, text in options if text.strip()}
    restated = [line for line in _OPTION_LINE.finditer(reply)
                if texts.get(line.group(1)) == _squash(line.group(2)) != ""]
    if len({line.group(1) for line in restated}) < 2:
        return reply
    for line in reversed(restated):
        reply = reply[: line.start()] + reply[line.end():]
    return reply


def _squash(text: str) -> str:
    return _SPACES.sub("", text).lower()


def _last_explicit_mention(reply: str, letters: set[str]) -> str | None:
    """The last letter a reply names explicitly, by position; None if it names none."""
    candidates = [
        (match.start(1), match.group(1).upper())
        for pattern in (_BRACKETED, _NAMED, _ALONE_ON_LINE)
        for match in pattern.finditer(reply)
    ]
    leading = _LEADING.match(reply.strip())
    if leading:
        candidates.append((-1, leading.group(1)))
    chosen = [(position, letter) for position, letter in candidates if letter in letters]
    return max(chosen)[1] if chosen else None
