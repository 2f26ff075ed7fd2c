"""The unit written at the end of a free-form math answer, and conversions between units.

An answer's unit is read from the end of its normalised text (lower case, no spaces; see
``freeform``): lengths (``mm``, ``cm``, ``m``, ``km``, ``in``, ``ft``, ``yd``, ``mi`` and
their spelled-out names, with a power ``^2``/``^3``/``²``/``³`` for areas and volumes),
degrees (``°``, ``^\\circ``, ``degrees``; a compass bearing's ``T`` after them), radians,
and units that are only dropped (``units``, ``square units``, ``cubic units``, litres,
grams, seconds, speeds, percent). A short unit (``m``, ``g``, ``s``, ``h``) counts only right
after a number, a closing bracket or ``π``, so ``2x+m`` keeps its ``m``.

Values in two lengths of the same power convert exactly (``440 cm`` is ``4.4 m``, ``1 m^2``
is ``10000 cm^2``); degrees and radians convert into each other. Anything else is compared
as written, the unit dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DEGREES = "deg"
RADIANS = "rad"
METRES_PER = {"mm": 1e-3, "cm": 1e-2, "m": 1.0, "km": 1e3, "in": 0.0254, "ft": 0.3048,
              "yd": 0.9144, "mi": 1609.344}
_LENGTH_NAMES = {
    "millimetres": "mm", "millimeters": "mm", "millimetre": "mm", "millimeter": "mm",
    "centimetres": "cm", "centimeters": "cm", "centimetre": "cm", "centimeter": "cm",
    "kilometres": "km", "kilometers": "km", "kilometre": "km", "kilometer": "km",
    "metres": "m", "meters": "m", "metre": "m", "meter": "m", "inches": "in", "inch": "in",
    "feet": "ft", "foot": "ft", "yards": "yd", "yard": "yd", "miles": "mi", "mile": "mi",
}
_POWER = r"\s?(?:\^\{?(?P<power>[23])\}?|(?P<sign>[²³]))?"
# A unit stands after the value: a number, a closing bracket or π (a short symbol such as
# "m" needs one of those, with or without a space); a word unit after a space will do too.
_AFTER_VALUE = r"(?:(?<=[\d}).π])|(?<=[\d}).π] ))"
_AFTER_WORD = r"(?:(?<=[\d}).π ]))"
_LENGTH = re.compile(
    rf"(?:{_AFTER_WORD}(?:square |sq\.? |cubic |square|cubic)?"
    rf"(?P<long>{'|'.join(sorted(_LENGTH_NAMES, key=len, reverse=True))})"
    rf"|{_AFTER_VALUE}(?P<short>mm|cm|km|m|in|ft|yd|mi)){_POWER}$")
_DEGREE = re.compile(r"\s?(?:\^\s?\{?\\circ\s?\}?|°|\\degree|(?<=[\d ])degrees?)\s?t?$")
_RADIAN = re.compile(rf"{_AFTER_VALUE}(?:rad|radians?)$")
_DROPPED = re.compile(
    rf"(?:{_AFTER_WORD}(?:(?:square|sq\.?|cubic) ?)?units?\s?(?:\^\{{?[23]\}}?|[²³])?"
    rf"|{_AFTER_WORD}(?:litres?|liters?|grams?|kilograms?|percent)"
    rf"|{_AFTER_VALUE}(?:ml|l|kg|g|mg|s|sec|seconds?|min|minutes?|h|hr|hours?|km ?/ ?h|m ?/ ?s|mph)"
    r"|\\?%)$")


@dataclass(frozen=True)
class Unit:
    """A unit read from an answer: ``kind`` is a length's symbol, ``deg``, ``rad`` or
    ``other`` (dropped, never converted); ``power`` 2 or 3 for areas and volumes."""

    kind: str
    power: int = 1

    def convert(self, value: float, to: "Unit") -> float | None:
        """``value`` in this unit expressed in ``to``; None where the two do not convert."""
        if self.kind in METRES_PER and to.kind in METRES_PER and self.power == to.power:
            return value * (METRES_PER[self.kind] / METRES_PER[to.kind]) ** self.power
        if (self.kind, to.kind) == (RADIANS, DEGREES):
            return math.degrees(value)
        if (self.kind, to.kind) == (DEGREES, RADIANS):
            return math.radians(value)
        return None


def split_unit(text: str) -> tuple[str, Unit | None]:
    """``text`` (lower case, spaces not yet removed) without the unit it ends with, and that
    unit (None: none)."""
    length = _LENGTH.search(text)
    if length and length.start() > 0:
        symbol = length.group("short") or _LENGTH_NAMES[length.group("long")]
        power = length.group("power") or {"²": "2", "³": "3"}.get(length.group("sign") or "", "1")
        return text[: length.start()], Unit(symbol, int(power))
    for pattern, kind in ((_DEGREE, DEGREES), (_RADIAN, RADIANS), (_DROPPED, "other")):
        match = pattern.search(text)
        if match and match.start() > 0:
            return text[: match.start()], Unit(kind)
    return text, None
