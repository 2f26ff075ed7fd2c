"""Free-form math answers judged by rule: equal values within tolerance, else equal text.

Both the answer read from a reply and the gold are read the same way (``read_answer``):

1. **Normalised**: ``掳`` (a ``°`` mis-decoded in MathVerse's published data) becomes ``°``;
   ``^\\circ`` is ``°``; ``$`` and ``\\( \\)`` delimiters, ``\\left``/``\\right``, LaTeX
   spacing and ``\\displaystyle`` are dropped; ``\\text{…}``/``\\mathrm{…}`` wrappers are unwrapped;
   ``\\dfrac``/``\\tfrac`` become ``\\frac``, ``\\cdot``/``×`` become ``*``, a unicode minus
   ``-``; ``\\pi`` becomes ``π``; a line break separates like a comma; lower case.
2. **Left side**: an answer written ``left = right`` is split when its left side names the
   quantity (``Area``, ``Surface Area``, ``S.A. of rectangular prism``), a variable (``x``,
   ``y_2``), a function (``f(x)``) or a point (``(x, y)``); ``5 = s`` is read as ``s = 5``
   and a leading ``=`` is dropped.
3. **Unit**: the unit the right side ends with is taken off (``answer_units``); degree signs
   elsewhere (``(90°, 5)``) are dropped; then all spaces.
4. **Value**: the right side read as a number (``latex_numbers``), where it is one; a gold's
   ``{8}{5}`` (a ``\\frac`` without its command) counts as ``\\frac{8}{5}``.

Two readings match when their whole normalised texts are equal, or when their left sides
agree (either has none, or either names a quantity in words, or both are the same name, ``y``
and ``f(x)``-style names counting as the same) and their right sides match:

- both are numbers: the values, converted where both units are known and convert (lengths,
  areas, volumes; degrees and radians, a ``π`` in a value meaning radians), are equal within
  ``RELATIVE_TOLERANCE``, or one is a decimal written with d decimals and the other lies
  within half a unit of its last place (``14.3`` matches ``14.32``; ``3.46`` matches
  ``2\\sqrt{3}``; an integer carries no rounding: ``14`` does not match ``14.3``);
- otherwise the right-side texts are equal (``y=-2x+4`` and ``y = -2x + 4``).

A reply without a final answer span is read by its last number, never one written as an
exponent (``cm^2``, ``x^{2}``), a subscript (``x_1``) or inside a word or unit (``H2O``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from crossmath.metrics.answers import strip_thinking
from crossmath.tasks.transfer.answer_units import DEGREES, RADIANS, Unit, split_unit
from crossmath.tasks.transfer.final_answer import final_answer_span
from crossmath.tasks.transfer.latex_numbers import decimals_written, numeric_value

RELATIVE_TOLERANCE = 1e-6
MISDECODED_DEGREE = "掳"

_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_REMOVED = re.compile(r"\$|\\[()\[\]]|\\left|\\right|\\[!,;: ]|\\q?quad|~|\\displaystyle")
_REPLACED = (
    (re.compile(MISDECODED_DEGREE), "°"),
    (re.compile(r"\^\s*\{?\\circ\s*\}?|\\circ|\\degree"), "°"),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\\cdot|\\times|×|·|∙"), "*"),
    (re.compile(r"÷"), "/"),
    (re.compile(r"[−–]"), "-"),
    (re.compile(r"\\uppi|\\pi(?![a-z])"), "π"),
    (re.compile(r"\s*\n\s*"), ","),
)
_DEGREE_MARK = re.compile(r"\^\{?\\circ\}?|\\circ|\\degree|°")
_SPACE = re.compile(r"\s+")
_BROKEN_FRAC = re.compile(r"^\{(\d+)\}\{(\d+)\}")
# Left sides: a quantity in words, a variable, a function of x, or the point (x, y).
_WORDS = r"[a-z][a-z. ]*[a-z.]"
_NAME = r"[a-z](?:_\{?\w+\}?)?"
_FUNCTION = r"[a-z]\([a-z]\)"
_POINT = r"\( ?[a-z] ?, ?[a-z] ?\)"
_LEFT = re.compile(rf"^(?P<left>{_POINT}|{_FUNCTION}|{_NAME}|{_WORDS})\s*=(?!=)(?P<right>[^=]+)$")
_REVERSED = re.compile(rf"^(?P<right>-?[\d.]+)\s*=\s*(?P<left>{_NAME})$")
_FUNCTION_NAMES = re.compile(rf"^(?:y|{_FUNCTION})$")
# The reply's last number, not an exponent, a subscript or part of a word.
_NUMBER = re.compile(r"(?<![\w^_.{])(?<![\^{]-)-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+(?:\.\d+)?)?(?!\d)")


@dataclass(frozen=True)
class Reading:
    """A free-form answer as the rules compare it."""

    text: str  # the whole answer, normalised, spaces removed
    left: str | None  # the left side of an assignment, spaces removed
    right: str  # the right side (the whole answer without one), unit and spaces removed
    unit: Unit | None
    value: float | None  # the right side's value, when it is a number

    @property
    def left_is_words(self) -> bool:
        return self.left is not None and len(re.sub(r"[^a-z]", "", self.left)) > 1 \
            and not _FUNCTION_NAMES.match(self.left) and "(" not in self.left


def read_free_form(output: str) -> str | None:
    """The answer a reply gives: its final answer span, else the last number it writes."""
    span = final_answer_span(output)
    if span is not None:
        return span
    numbers = _NUMBER.findall(strip_thinking(output))
    return numbers[-1] if numbers else None


def normalize_answer(text: str) -> str:
    """The answer text normalised (step 1), spaces removed."""
    return _SPACE.sub("", _normalized(text))


def _normalized(text: str) -> str:
    text = _WRAPPER.sub(r"\1", text)
    text = _REMOVED.sub(" ", text)
    for pattern, replacement in _REPLACED:
        text = pattern.sub(replacement, text)
    text = _SPACE.sub(" ", text).strip().lower().rstrip(".").strip()
    return text[1:].strip() if text.startswith("=") else text


def read_answer(text: str) -> Reading:
    """A free-form answer (a reply's or a gold) read as steps 1-4 say."""
    normal = _normalized(text)
    left, right = None, normal
    assignment = _LEFT.match(normal) or _REVERSED.match(normal)
    if assignment:
        left, right = _SPACE.sub("", assignment.group("left")), assignment.group("right").strip()
    right, unit = split_unit(right)
    right = _SPACE.sub("", _DEGREE_MARK.sub("", right))
    right = _BROKEN_FRAC.sub(r"\\frac{\1}{\2}", right)
    return Reading(_SPACE.sub("", _DEGREE_MARK.sub("", normal)), left, right, unit,
                   numeric_value(right))


def answers_match(predicted: str, gold: str) -> bool:
    """Whether a free-form answer matches the gold by the rules above; never raises."""
    p, g = read_answer(predicted), read_answer(gold)
    if not p.text or not g.text:
        return False
    if p.text == g.text:
        return True
    if not _same_quantity(p, g) or not p.right or not g.right:
        return False
    if p.value is None or g.value is None:
        return p.right == g.right
    return _values_agree(p, g)


def _same_quantity(p: Reading, g: Reading) -> bool:
    """Whether two left sides name the same thing (see the module's docstring)."""
    if p.left is None or g.left is None or p.left_is_words or g.left_is_words:
        return True
    if p.left == g.left:
        return True
    return bool(_FUNCTION_NAMES.match(p.left) and _FUNCTION_NAMES.match(g.left))


def _values_agree(p: Reading, g: Reading) -> bool:
    """Equal values: converted into each other's unit where both are known and convert
    (each within its own written rounding), else as written (``numbers_agree``)."""
    g_in_p, p_in_g = _converted(g, p), _converted(p, g)
    if g_in_p is None or p_in_g is None:
        return numbers_agree(p.right, p.value, g.right, g.value)  # type: ignore[arg-type]
    return _within(p.right, p.value, g_in_p) or _within(g.right, g.value, p_in_g)  # type: ignore[arg-type]


def _converted(reading: Reading, other: Reading) -> float | None:
    """``reading``'s value in ``other``'s unit, where both units are known and convert; a
    value with π and no unit is in radians when the other is in degrees."""
    unit, to = _unit(reading, other), _unit(other, reading)
    if unit is None or to is None:
        return None
    return unit.convert(reading.value, to)  # type: ignore[arg-type]


def _unit(reading: Reading, other: Reading) -> Unit | None:
    if reading.unit is None and other.unit == Unit(DEGREES) and "π" in reading.right:
        return Unit(RADIANS)
    return reading.unit


def _within(text: str, value: float, other: float) -> bool:
    """``other`` equals ``value`` within tolerance, or within the rounding ``text`` shows."""
    if math.isclose(value, other, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12):
        return True
    decimals = decimals_written(text)
    return decimals is not None and abs(value - other) <= 0.5 * 10 ** -decimals * (1 + 1e-9)


def numbers_agree(p_text: str, p: float, g_text: str, g: float) -> bool:
    """Same value, or equal up to the rounding of the less precise decimal of the two."""
    if math.isclose(p, g, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12):
        return True
    shown = [d for d in (decimals_written(p_text), decimals_written(g_text)) if d]
    if not shown:
        return False
    return abs(p - g) <= 0.5 * 10 ** -min(shown) * (1 + 1e-9)
