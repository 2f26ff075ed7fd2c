"""The value of a short numeric answer written as plain text or simple LaTeX.

Covers what math answers are written with: integers and decimals (``1,250`` with thousands
separators), ``+ - * / ^`` and parentheses, ``\\frac{a}{b}`` (``\\dfrac``, ``\\tfrac``),
``\\sqrt{x}`` and ``√x``, ``\\pi`` and ``π``, and implicit products (``2\\sqrt{3}``,
``\\frac{4}{3}\\pi``, ``3(2+1)``). Anything else, a variable above all (``2x+1``), makes the
text not a number: :func:`numeric_value` returns None and never raises, whatever the input.

The input is expected already normalised by the caller (lower case, no spaces, no ``$``).
Evaluation is a small recursive-descent parser over floats, never ``eval``.
"""

from __future__ import annotations

import math
import re

MAX_LENGTH = 120  # longer text is not a short numeric answer

_TOKEN = re.compile(r"\d+(?:\.\d*)?|\.\d+|\\d?t?frac|\\sqrt|√|\\pi|π|[-+*/^(){}]")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DIGIT_ARGUMENT = re.compile(r"(\\d?t?frac|\\sqrt)(\d)(\d)?")


class _NotNumeric(Exception):
    pass


def numeric_value(text: str) -> float | None:
    """The finite value of ``text`` read as arithmetic, or None if it is not a number."""
    if not text or len(text) > MAX_LENGTH:
        return None
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    try:
        value = _Parser(_tokens(text)).parse()
    except (_NotNumeric, ArithmeticError, ValueError):
        return None
    return value if math.isfinite(value) else None


def decimals_written(text: str) -> int | None:
    """How many decimals a plain decimal literal shows (``14.30`` -> 2), else None."""
    match = re.fullmatch(r"-?\d*\.(\d+)", text)
    return len(match.group(1)) if match else None


def _tokens(text: str) -> list[str]:
    text = _DIGIT_ARGUMENT.sub(_brace_digits, text)
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _NotNumeric(text[position:])
        tokens.append(match.group(0))
        position = match.end()
    return tokens


def _brace_digits(match: re.Match) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``: LaTeX allows one-digit arguments without braces."""
    return match.group(1) + "".join(f"{{{digit}}}" for digit in match.groups()[1:] if digit)


class _Parser:
    """expression := term (("+" | "-") term)*;  term := unary (("*" | "/")? unary)*;
    unary := ("-" | "+") unary | power;  power := atom ("^" unary)?;
    atom := number | pi | "(" expression ")" | "{" expression "}" | frac | sqrt.
    A term's missing operator is an implicit product; ``-2^2`` is -4."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.index = 0

    def parse(self) -> float:
        value = self.expression()
        if self.index != len(self.tokens):
            raise _NotNumeric(self.tokens[self.index])
        return value

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _NotNumeric(f"expected {expected or 'more'}, found {token}")
        self.index += 1
        return token

    def expression(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> float:
        value = self.unary()
        while True:
            token = self.peek()
            if token in ("*", "/"):
                self.take()
                value = value * self.unary() if token == "*" else value / self.unary()
            elif token is not None and token not in ("+", "-", ")", "}", "^"):
                value *= self.unary()  # implicit product: 2\sqrt{3}, 4\pi
            else:
                return value

    def unary(self) -> float:
        if self.peek() in ("-", "+"):
            return -self.unary() if self.take() == "-" else self.unary()
        return self.power()

    def power(self) -> float:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            return math.pow(base, self.unary())
        return base

    def atom(self) -> float:
        token = self.take()
        if token in ("(", "{"):
            value = self.expression()
            self.take(")" if token == "(" else "}")
            return value
        if token in ("\\pi", "π"):
            return math.pi
        if token.endswith("frac"):
            return self.group() / self.group()
        if token in ("\\sqrt", "√"):
            return math.sqrt(self.group() if self.peek() == "{" else self.atom())
        if token[0].isdigit() or token[0] == ".":
            return float(token)
        raise _NotNumeric(token)

    def group(self) -> float:
        self.take("{")
        value = self.expression()
        self.take("}")
        return value
