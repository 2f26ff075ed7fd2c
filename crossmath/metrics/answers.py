"""Turn a model's raw output into the answer tokens that are scored.

The rules follow the CrossMath release (``batch_inference_qwen35.py`` writes the tokens of the
last ``<answer>`` block, ``calc_metric.py`` re-splits them on whitespace, commas, pipes and
tabs and compares strings), with one deliberate addition: a thinking block is removed first,
so a draft ``<answer>`` written while thinking never counts as the answer.

Choices, each a place where a guess had to be made:

- Tags are matched case-insensitively (``<ANSWER>`` counts), as the release does.
- The *last* complete ``<answer>…</answer>`` block wins; an opening tag without a closing one
  is no answer (the model was cut off before committing).
- Tokens are compared as strings, exactly as the release compares them: ``07`` is not ``7``
  and ``7.`` is not ``7``. Normalising further would make our scores differ from the
  release's on the same outputs.
- ``<answer></answer>`` (a tag with nothing usable inside) gives ``[]``: the model answered,
  with nothing. No tag at all gives ``None``. Both score as wrong.
"""

from __future__ import annotations

import re
from typing import Sequence

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_TOKEN_SEPARATORS = re.compile(r"[\s|,]+")


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


def answer_block(values: Sequence[object]) -> str:
    """``<answer>v1 v2 ...</answer>``: the form every prompt asks a reply to end with."""
    return "<answer>" + " ".join(str(value) for value in values) + "</answer>"


def split_answer_tokens(text: str) -> list[str]:
    """Tokens of an answer's text: split on whitespace, commas and pipes; empties dropped."""
    return [token for token in _TOKEN_SEPARATORS.split(text) if token]


def answer_text(output: str) -> str | None:
    """The raw text of the last ``<answer>`` block after the thinking, or None without one."""
    blocks = _ANSWER_BLOCK.findall(strip_thinking(output))
    return blocks[-1] if blocks else None


def extract_answer(output: str) -> list[str] | None:
    """The tokens of the last ``<answer>`` block after the thinking, or None without one.

    Never raises on model text: whatever the model wrote, the result is tokens or None.
    """
    text = answer_text(output)
    return None if text is None else split_answer_tokens(text)
