"""Free-form math answers judged by rule: equal numbers within tolerance, else equal text.

Both the answer read from a reply and the gold are first normalised: ``$`` and ``\\( \\)``
delimiters, ``\\text{…}`` wrappers, ``\\left``/``\\right`` and LaTeX spacing are dropped;
``\\dfrac``/``\\tfrac`` become ``\\frac``, ``\\cdot``/``×`` become ``*``, a unicode minus
becomes ``-``; degree signs and percent signs are dropped (the number is what counts); then
everything is lower-cased and all spaces are removed.

Two normalised answers match when

- both read as numbers (see ``latex_numbers``; a trailing unit such as ``cm``, ``cm^2``,
  ``units`` or ``degrees`` is ignored) and they are the same value (relative difference at
  most 1e-6), or one of them is a decimal written with d decimals and the other is within
  half a unit of its last place (``14.3`` matches ``14.32`` and ``2\\sqrt{3}`` matches
  ``3.46``; ``14`` does not match ``14.3``, an integer carries no rounding);
- or, when either is not a number, the texts are equal (``y=-2x+4`` and ``y = -2x + 4``,
  ``(-2,1]`` and ``( -2, 1 ]``).

An answer written as an assignment, ``L = 14 cm`` or ``y=2x+1``, is compared by its right
side too when the other answer has no left side or the same one (``x=5`` never matches
``y=5``).
"""

from __future__ import annotations

import math
import re

from crossmath.metrics.answers import strip_thinking
from crossmath.tasks.final_answer import final_answer_span
from crossmath.tasks.latex_numbers import decimals_written, numeric_value

_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_REMOVED = re.compile(r"\$|\\[()\[\]]|\\left|\\right|\\[!,;: ]|~|\^\s*\{?\\circ\}?|\\circ|"
                      r"\\degree|°|\\%|%|\\displaystyle")
_REPLACED = (
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\\cdot|\\times|×|·|∙"), "*"),
    (re.compile(r"÷"), "/"),
    (re.compile(r"[−–]"), "-"),
    (re.compile(r"\\uppi|\\pi"), "π"),
)
_SPACE = re.compile(r"\s+")
_UNIT = re.compile(
    r"(?<=[\d}.)π])(?:square|sq\.?)?(?:units?|degrees?|cm|mm|km|m|in|inch(?:es)?|ft|feet|foot|"
    r"yards?|yd|met(?:er|re)s?|centimet(?:er|re)s?|kilomet(?:er|re)s?|miles?|seconds?|s|"
    r"minutes?|min|hours?|h|kg|g)(?:\^?\{?[23]\}?|²|³)?$"
)
_ASSIGNMENT = re.compile(r"^([a-z](?:_\{?\w+\}?)?(?:\([a-z]\))?)=(?!=)(.+)$")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+(?:\.\d+)?)?")

RELATIVE_TOLERANCE = 1e-6


def read_free_form(output: str) -> str | None:
    """The answer a reply gives: its final answer span, else the last number it writes."""
    span = final_answer_span(output)
    if span is not None:
        return span
    numbers = _NUMBER.findall(strip_thinking(output))
    return numbers[-1] if numbers else None


def normalize_answer(text: str) -> str:
    """The answer text with LaTeX wrappers, spacing, degree and percent signs removed,
    lower-cased, spaces dropped."""
    text = _WRAPPER.sub(r"\1", text)
    text = _REMOVED.sub("", text)
    for pattern, replacement in _REPLACED:
        text = pattern.sub(replacement, text)
    text = _SPACE.sub("", text).lower()
    return text[:-1] if text.endswith(".") else text


def answers_match(predicted: str, gold: str) -> bool:
    """Whether a free-form answer matches the gold by the rules above; never raises."""
    p, g = normalize_answer(predicted), normalize_answer(gold)
    if not p or not g:
        return False
    if _same(p, g):
        return True
    p_left, p_right = _split_assignment(p)
    g_left, g_right = _split_assignment(g)
    if p_left is None and g_left is None:
        return False
    if p_left is not None and g_left is not None and p_left != g_left:
        return False
    return _same(p_right, g_right)


def _split_assignment(text: str) -> tuple[str | None, str]:
    match = _ASSIGNMENT.match(text)
    return (match.group(1), match.group(2)) if match else (None, text)


def _same(p: str, g: str) -> bool:
    p_number, g_number = _as_number(p), _as_number(g)
    if p_number is None or g_number is None:
        return p == g
    return numbers_agree(*p_number, *g_number)


def _as_number(text: str) -> tuple[str, float] | None:
    """The numeric text (unit dropped) and its value, or None if the text is no number."""
    for candidate in (text, _UNIT.sub("", text)):
        value = numeric_value(candidate)
        if value is not None:
            return candidate, value
    return None


def numbers_agree(p_text: str, p: float, g_text: str, g: float) -> bool:
    """Same value, or equal up to the rounding of the less precise decimal of the two."""
    if math.isclose(p, g, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12):
        return True
    shown = [d for d in (decimals_written(p_text), decimals_written(g_text)) if d]
    if not shown:
        return False
    return abs(p - g) <= 0.5 * 10 ** -min(shown) * (1 + 1e-9)
