"""Turn text into the answer tokens that are scored: the release's rules, and two of ours beside them.

**The primary rule is the release's, end to end.** The CrossMath release reads an answer in
two steps, and :func:`extract_answer` is exactly their composition:

1. ``batch_inference_qwen35.py`` takes the *last* match of ``<answer>\\s*(.*?)\\s*</answer>``
   (case-insensitive, ``.`` matching newlines) in the whole decoded output, splits it on
   whitespace and writes the tokens joined by single spaces as one line of a log, or the line
   ``No Answer`` when the output has no complete block.
2. ``calc_metric.py`` reads each log line back: the content of the *first* ``<answer>`` block
   of the line if it has one, else the whole line, split on whitespace, commas, pipes and tabs.

A block's content never holds a closing tag (the lazy match stops at the first one), so a line
written by step 1 never holds a block, and step 2 only splits it further on commas and pipes.
Python's ``\\s`` and ``str.split()`` agree on what whitespace is (all 29 code points), so the
composition is: the last complete block of the output, split on whitespace, commas and pipes.
Nothing else is dropped: thinking is *not* stripped (a draft ``<answer>`` inside an unfinished
thought counts when no later block exists, as in the release), tokens are compared as strings
(``07`` is not ``7``), an opened but never closed block is no answer, ``<answer></answer>`` is
an empty answer (``[]``, answered but wrong) and no block is ``None`` (no answer).

**Why two rules that differ (last block vs first block).** Step 1 reads free model text, in
which a model may write a block, think again and write a corrected one: the last block is its
final word. Step 2 reads log lines, one answer each; lines written by step 1 hold no block,
and for a line written some other way with its answer in tags, the release takes the first
block. :func:`parse_release_line` keeps that, so a log scores here as it scores in the release.

Our two additions, never the primary score:

- :func:`extract_answer_after_thinking`: the same rule on the output with its reasoning block
  removed (:func:`strip_thinking`), so a draft written while thinking never counts. An option
  of :func:`~crossmath.metrics.scorecard.evaluate_predictions` (``answer_rule``).
- :func:`extract_lenient_answer`: the answer with its formatting forgiven (markup, trailing
  punctuation, leading zeros, Unicode minus; a ``\\boxed{}`` or unclosed block when the tags
  are missing), so a gap caused by formatting can be told apart from a gap in reasoning.

The release decodes outputs with ``skip_special_tokens=False`` (special tokens such as
``<|im_end|>`` stay in its text); our HF backend decodes with ``skip_special_tokens=True``
after cutting at the stop token. Both read the same block unless a model writes a special
token *inside* a complete block, which then ends up glued to a token in the release's text only.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

# The release's tags. Its pattern ``<answer>\s*(.*?)\s*</answer>`` is not run as a regex here: on
# a degenerate output (thousands of unclosed openings) findall takes quadratic time, seconds per
# output. :func:`_blocks` finds the same blocks in one pass over the tags.
_RELEASE_TAGS = re.compile(r"(<answer>)|</answer>", re.IGNORECASE)
# calc_metric.py's pattern for a tag inside a log line.
_ANSWER_IN_LINE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_TOKEN_SEPARATORS = re.compile(r"[\s|,]+")
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)

NO_ANSWER_LINE = "No Answer"


def answer_block(values: Sequence[object]) -> str:
    """``<answer>v1 v2 ...</answer>``: the form every prompt asks a reply to end with."""
    return "<answer>" + " ".join(str(value) for value in values) + "</answer>"


def split_answer_tokens(text: str) -> list[str]:
    """Tokens of an answer's text: split on whitespace, commas and pipes; empties dropped."""
    return [token for token in _TOKEN_SEPARATORS.split(text) if token]


def last_answer_text(output: str) -> str | None:
    """The content of the last complete ``<answer>`` block, stripped, or None without one."""
    blocks, _ = _blocks(output, _RELEASE_TAGS)
    return blocks[-1].strip() if blocks else None


def _blocks(output: str, tags: re.Pattern[str]) -> tuple[list[str], int | None]:
    """The blocks' contents in order, and where the text after the last unclosed opening starts.

    ``tags`` matches an opening tag as group 1 and a closing tag otherwise. The blocks are the
    ones a lazy ``open(.*?)close`` findall returns: a block runs from an opening to the first
    closing after it (openings in between are content) and the next block starts after that
    closing; a closing without an opening before it is ignored.
    """
    blocks: list[str] = []
    start: int | None = None
    last_unclosed: int | None = None
    for tag in tags.finditer(output):
        if tag.group(1) is not None:
            start = tag.end() if start is None else start
            last_unclosed = tag.end()
        elif start is not None:
            blocks.append(output[start:tag.start()])
            start = last_unclosed = None
    return blocks, last_unclosed


def extract_answer(output: str) -> list[str] | None:
    """The release's answer tokens for a model output (the primary rule; see the module doc).

    Never raises on model text: whatever the model wrote, the result is tokens or None.
    """
    text = last_answer_text(output)
    return None if text is None else split_answer_tokens(text)


def parse_release_line(line: str) -> list[str] | None:
    """The tokens of one line of a release log, as ``calc_metric.py`` reads it.

    The first ``<answer>`` block of the line if it has one, else the whole line. ``No Answer``
    (the release's line for an output without a block) is None here; the release reads it as
    the two tokens ``No`` and ``Answer``, which score exactly as no answer does.
    """
    text = line.strip()
    if text == NO_ANSWER_LINE:
        return None
    match = _ANSWER_IN_LINE.search(text)
    if match is not None:
        text = match.group(1)
    return split_answer_tokens(text)


# ---------------------------------------------------------------- thinking-aware variant


def strip_thinking(output: str) -> str:
    """The output without its reasoning block.

    Three shapes occur: a complete ``<think>…</think>`` block; a bare ``…</think>`` when the
    chat template put the opening tag in the prompt (Qwen3 does this), so everything up to the
    last closing tag is thought; and an unclosed ``<think>…`` when generation stopped while
    thinking, so everything from the opening tag on is thought.
    """
    text = _THINK_BLOCK.sub(" ", output)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    opening = _THINK_OPEN.search(text)
    if opening:
        text = text[: opening.start()]
    return text


def extract_answer_after_thinking(output: str) -> list[str] | None:
    """The primary rule applied after :func:`strip_thinking`: drafts inside a thought never count."""
    return extract_answer(strip_thinking(output))


# How each answer rule prepares an output before reading it; the name is part of a score's identity.
ANSWER_RULES: dict[str, Callable[[str], str]] = {
    "release": lambda output: output,
    "after_thinking": strip_thinking,
}


def answer_text_for_rule(rule: str) -> Callable[[str], str]:
    """The preparation step of an answer rule; an unknown name is an error that lists the known."""
    try:
        return ANSWER_RULES[rule]
    except KeyError:
        raise ValueError(f"unknown answer rule {rule!r}; known: {', '.join(ANSWER_RULES)}") from None


# ---------------------------------------------------------------- lenient reading

# Sloppy tags: spaces inside the brackets, a backslash for the slash, a closing without its ">".
_LENIENT_TAGS = re.compile(r"(<\s*answer\s*>)|<\s*[/\\]\s*answer\s*>?", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Markup that never belongs to a number. LaTeX commands, spacing and math delimiters become
# a space (they may stand between values); braces, ``$``, ``*`` and backticks are deleted (they
# hug a value: ``$35$.`` reads ``35.``).
_MARKUP_SPACE = re.compile(
    r"\\(?:boxed|text|textbf|mathbf|mathrm|displaystyle|quad|qquad)\b|\\[,;:! ()\[\]]")
_MARKUP_DELETE = re.compile(r"\\?[{}]|[$*`]")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-", "\ufe63": "-", "\uff0d": "-"})
_TRAILING_PUNCTUATION = ".;:!?"
_SIGNED_INTEGER = re.compile(r"([+-]?)0*([0-9]+)")


def extract_lenient_answer(output: str) -> list[str] | None:
    """The answer with its formatting forgiven; None only when no answer can be found at all.

    Where the answer is: the primary rule's block when there is one, so an answer that is
    right by the primary rule stays right here. Without one, the last block with tolerant tags
    (``< answer >``, ``<\\answer>``, a closing tag without its ``>``); then the text after the
    last opening tag when none was closed; then the content of the last ``\\boxed{…}``.
    Its tokens are normalised by :func:`lenient_tokens`.
    """
    text = last_answer_text(output)
    if text is None:
        blocks, last_unclosed = _blocks(output, _LENIENT_TAGS)
        if blocks:
            text = blocks[-1]
        elif last_unclosed is not None:
            text = output[last_unclosed:]
        else:
            text = last_boxed(output, allow_unclosed=True)
    return None if text is None else lenient_tokens(text)


def lenient_tokens(text: str) -> list[str]:
    """Answer tokens with formatting removed; digits and their order are never changed.

    Unicode minus signs and dashes become ``-``; LaTeX commands and math delimiters become
    spaces; braces, ``$``, ``*`` and backticks are deleted; the text is split as the primary
    rule splits it; each token loses
    its trailing ``.;:!?`` (a token of punctuation only, such as ``?``, stays, so it keeps the
    values after it in their positions); an integer is written canonically (``07`` and ``+7``
    read ``7``).
    Thousands separators are not joined: a comma separates tokens in the release's rule, and
    ``1,234`` cannot be told from the two values ``1, 234`` (puzzle values stay below 1,000).
    Decimals (``7.0``) and labels (``x=7``) are left as they are: they are not formatting.
    """
    cleaned = _MARKUP_DELETE.sub("", _MARKUP_SPACE.sub(" ", text.translate(_MINUS_SIGNS)))
    tokens = []
    for token in split_answer_tokens(cleaned):
        token = token.rstrip(_TRAILING_PUNCTUATION) or token
        integer = _SIGNED_INTEGER.fullmatch(token)
        if integer:  # by hand, not int(): Python refuses to convert over 4,300 digits
            sign, digits = integer.groups()
            token = ("-" if sign == "-" and digits != "0" else "") + digits
        tokens.append(token)
    return tokens


def last_boxed(text: str, *, allow_unclosed: bool = False) -> str | None:
    """The content of the last ``\\boxed{…}`` (or ``\\fbox{…}``) whose braces close, or None.

    With ``allow_unclosed``, the last one even when it never closes: its content runs to the
    end of the text (a reply cut off inside its box).
    """
    matches = list(_BOXED.finditer(text))
    if allow_unclosed and matches:
        content = _balanced(text, matches[-1].end())
        return text[matches[-1].end():] if content is None else content
    for match in reversed(matches):
        content = _balanced(text, match.end())
        if content is not None:
            return content
    return None


def _balanced(text: str, start: int) -> str | None:
    """The text from ``start`` up to the brace that closes the one just before it."""
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start:index]
    return None
