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
own scoring, exactly as its script runs it, is ``official``.

Normalising and matching (steps 2 and 3) are MMMU's own (``official``). A reply
*answers* an open question (``answer_rate``) when it commits to an answer
(``final_answer.commits_to_answer``) or is judged right: MMMU's key responses alone do not
tell ("so I give no answer" has one).
"""

from __future__ import annotations

import re
from typing import Sequence

from crossmath.metrics.answers import strip_thinking
from crossmath.tasks.mmmu.official import Candidate, eval_open, normalized_candidates
from crossmath.tasks.transfer.final_answer import commits_to_answer, final_answer_span
from crossmath.tasks.transfer.item import Judgement

INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = frozenset(":,.!?;'")
_NUMBER = re.compile(
    r"(?<![\d.])-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?[eE][+-]?\d+|\d+\.\d+|\.\d+|\d+)"
    r"(?!\d)"
)


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
    correct = eval_open(list(gold), found)
    return Judgement(answer, correct, answered=correct or commits_to_answer(output))


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
    return normalized_candidates([*keys, *(number for key in keys
                                           for number in _NUMBER.findall(key))])
