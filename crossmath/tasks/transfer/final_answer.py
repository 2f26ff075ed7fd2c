"""Where a reply commits to its final answer: the span every transfer task's scorer reads.

Our prompts ask for the final answer alone inside ``<answer>…</answer>``, the form CrossMath
uses too. Models do not always comply, so the span is looked for in this order, each rule
tried only when the one before found nothing, always after the thinking block is removed
(a draft answer written while thinking never counts):

1. the content of the last complete ``<answer>…</answer>`` block;
2. the content of the last ``\\boxed{…}`` (braces balanced), the habit of math-tuned models;
3. the rest of the line after the last "answer is", "answer:", "final answer is",
   "correct option is", "the answers are" (and the like) phrase, or after "I choose",
   "I'd go with", "I pick", "I select", up to the end of the sentence or of the clause
   (a semicolon, ", since ...", " because ...").

Inside the span, a ``\\boxed{…}`` is unwrapped and markdown emphasis, ``$`` delimiters and a
trailing full stop are dropped. Without any of the three the reply has no final answer span;
each task then decides what else it reads (the last letter mention, the last number, MMMU's
own key-sentence rule).
"""

from __future__ import annotations

import re

from crossmath.metrics.answers import last_answer_text, last_boxed, strip_thinking

_ANSWER_PHRASE = re.compile(
    r"\b(?:final\s+answers?|answers?|correct\s+(?:options?|choices?|letters?)|options?|choices?)"
    r"\b(?:\s+(?:is|are|would\s+be|should\s+be))?\s*(?::|=|\bis\b)?\s*"
    r"|\bI(?:'d|\s+would|\s+will|'ll)?\s+(?:choose|pick|select|go\s+with)\b\s*:?\s*",
    re.IGNORECASE,
)
_PHRASE_HAS_LINK = re.compile(r"(?::|=|\bis\b|\bare\b|\bbe\b|choose|pick|select|with)\s*:?\s*$",
                              re.IGNORECASE)
# Where a phrase's answer stops: the end of the sentence, a semicolon, or a clause that
# explains it (", since ...", " because ..."); a comma before a number or a one-letter
# name does not stop it ("(-2, 1]", "x = 2, y = 3").
_PHRASE_END = re.compile(r"\.(?:\s|$)|;|,\s+(?=[a-z]{2})|\s+(?:because|since|as|which)\b")
_DECORATION = re.compile(r"\*\*|__|`|\$")
_A_NUMBER = re.compile(r"\d")
SHORT_REPLY_WORDS = 5  # a reply this short, without a span, is a bare answer


def final_answer_span(output: str) -> str | None:
    """The cleaned text a reply commits to as its final answer, or None if it commits to none.

    Never raises on model text. An empty ``<answer></answer>`` gives "": the reply committed
    to nothing, which scores wrong and counts as unanswered, like None.
    """
    reply = strip_thinking(output)
    tagged = last_answer_text(reply)
    if tagged is not None:
        return clean_span(tagged)
    boxed = last_boxed(reply)
    if boxed is not None:
        return clean_span(boxed)
    phrase = _last_answer_phrase(reply)
    return None if phrase is None else clean_span(phrase)


def clean_span(span: str) -> str:
    """A span without a box around it, markdown emphasis, ``$`` signs or a final full stop."""
    boxed = last_boxed(span)
    if boxed is not None:
        span = boxed
    span = _DECORATION.sub("", span).strip()
    return span[:-1].rstrip() if span.endswith(".") else span


def _last_answer_phrase(reply: str) -> str | None:
    """What follows the last answer phrase on its line, up to the end of its clause."""
    for match in reversed(list(_ANSWER_PHRASE.finditer(reply))):
        if not _PHRASE_HAS_LINK.search(match.group(0)):
            continue  # "the answer depends on ...": a phrase without "is" or ":" commits to nothing
        line = reply[match.end():].split("\n", 1)[0]
        end = _PHRASE_END.search(line)
        span = (line[: end.start()] if end else line).strip()
        if span:
            return span
    return None


def commits_to_answer(output: str) -> bool:
    """Whether a reply commits to an answer (right or wrong) to an open question: a
    non-empty final answer span, or without one a bare reply of at most
    ``SHORT_REPLY_WORDS`` words, or one that writes a number."""
    span = final_answer_span(output)
    if span is not None:
        return bool(span.strip())
    reply = strip_thinking(output).strip()
    return bool(reply) and (len(reply.split()) <= SHORT_REPLY_WORDS
                            or _A_NUMBER.search(reply) is not None)
