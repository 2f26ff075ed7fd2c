"""MMMU's rule-based matching of open (short-answer) questions, written from its description.

MMMU's evaluation reads an open answer in three steps, kept here:

1. **Key responses.** The response is lower-cased and cut into lines. In each line, the text
   after the last occurrence of each indicator ("could be", "so", "is", "thus", "therefore",
   "final", "answer", "result"; and "=" in the last line) is a candidate tail; the shortest
   non-empty tail of the line is its key response, unless it is a lone punctuation mark.
   Without any key response, the whole response is the one key response.
2. **Candidates.** Each key response, plus every number in it (with thousands commas,
   in scientific notation, or plain), normalised: a number becomes a float rounded to two
   decimals; any other text stays lower-case text, a single character being padded with a
   space on either side so it cannot match inside a word.
3. **Matching.** The gold is normalised the same way (each of them, when MMMU gives a list).
   A numeric candidate matches an equal numeric gold; a text gold matches when it occurs
   inside a text candidate.

Ours differs in three places, all documented in docs/transfer.md: when the reply has a final
answer span (``<answer>``, ``\\boxed{}``, "the answer is"), that span is the response
instead of the whole reply; a unicode minus (``−``) reads as ``-``; and MMMU's sentence split (". " before a capital) is left out,
as it never fires in MMMU's own code (the text is lower-cased before it is split). MMMU's
own scoring, exactly as its script runs it, is ``mmmu_official``.

A reply *answers* an open question (``answer_rate``) when it commits to an answer: a
non-empty final answer span, or without one a bare reply of at most ``SHORT_REPLY_WORDS``
words or one that writes a number, or a reply judged right. MMMU's key responses alone do
not tell: "so I give no answer" has one.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from crossmath.metrics.answers import strip_thinking
from crossmath.tasks.final_answer import final_answer_span
from crossmath.tasks.item import Judgement

INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = frozenset(":,.!?;'")
_NUMBER = re.compile(
    r"(?<![\d.])-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?[eE][+-]?\d+|\d+\.\d+|\.\d+|\d+)"
    r"(?!\d)"
)

Candidate = float | str
SHORT_REPLY_WORDS = 5


def judge_open(output: str, gold: Sequence[str]) -> Judgement:
    """An open answer judged by MMMU's rules; the answer recorded is the final answer span,
    or (without one) the key responses MMMU's rule picked, joined by " | "."""
    span = final_answer_span(output)
    response = (span if span is not None else strip_thinking(output)).replace("−", "-")
    if not response.strip():
        return Judgement(None, False)
    keys = key_responses(response)
    found = candidates(keys)
    answer = span if span is not None else " | ".join(keys)
    correct = open_answer_matches(found, gold)
    return Judgement(answer, correct, answered=correct or commits_to_answer(output))


def commits_to_answer(output: str) -> bool:
    """Whether a reply to an open question commits to an answer (see the module's
    docstring; whether it is right aside)."""
    span = final_answer_span(output)
    if span is not None:
        return bool(span.strip())
    reply = strip_thinking(output).strip()
    return bool(reply) and (len(reply.split()) <= SHORT_REPLY_WORDS
                            or _NUMBER.search(reply) is not None)


def key_responses(response: str) -> list[str]:
    """The tail of each line after its answer indicators (step 1 above)."""
    text = response.strip().strip(".").lower()
    lines = text.split("\n")
    keys = []
    for index, line in enumerate(lines):
        indicators = INDICATORS + (("=",) if index == len(lines) - 1 else ())
        tails = [line.split(indicator)[-1].strip() for indicator in indicators
                 if indicator in line]
        tails = [tail for tail in tails if tail]
        if tails:
            shortest = min(tails, key=len)
            if shortest not in _TRIVIAL:
                keys.append(shortest)
    return keys or [text]


def candidates(keys: Sequence[str]) -> list[Candidate]:
    """Key responses and the numbers in them, normalised, without repeats (step 2)."""
    found: list[Candidate] = []
    for text in [*keys, *(number for key in keys for number in _NUMBER.findall(key))]:
        for value in normalize(text):
            if value not in found:
                found.append(value)
    return found


def normalize(text: str) -> list[Candidate]:
    """A number as a float rounded to two decimals; other text lower-cased, one character
    padded both ways."""
    text = text.strip()
    number = _as_float(text)
    if number is not None:
        return [round(number, 2)]
    text = text.lower()
    return [f" {text}", f"{text} "] if len(text) == 1 else [text]


def open_answer_matches(found: Sequence[Candidate], gold: Sequence[str]) -> bool:
    """Step 3: equal numbers, or a gold text inside a candidate text."""
    wanted = [value for answer in gold for value in normalize(answer)]
    for candidate in found:
        if isinstance(candidate, str):
            if any(isinstance(value, str) and value in candidate for value in wanted):
                return True
        elif candidate in wanted:
            return True
    return False


def _as_float(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None
