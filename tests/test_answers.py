"""Answer extraction: the last <answer> block after the thinking, tokens as the release splits them."""

from __future__ import annotations

import random
import re

import pytest

from crossmath.metrics.answers import extract_answer, split_answer_tokens, strip_thinking


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("reasoning ... <answer>12 7 35</answer>", ["12", "7", "35"]),
        ("<answer>1 2</answer> on second thought <answer>3 4</answer>", ["3", "4"]),
        ("<ANSWER>5 6</Answer>", ["5", "6"]),
        ("<answer>12, 7, 35</answer>", ["12", "7", "35"]),
        ("<answer>12 | 7 | 35</answer>", ["12", "7", "35"]),
        ("<answer>\n  12\n7\t\t35  \n</answer>", ["12", "7", "35"]),
        ("<answer>12,7,,35</answer>", ["12", "7", "35"]),
        ("<answer>07 7.0 x=3</answer>", ["07", "7.0", "x=3"]),  # strings, as the release compares
        ("<answer></answer>", []),
        ("<answer> , | </answer>", []),
        ("the values are 12 7 35", None),
        ("<answer>12 7 35", None),  # opened, never closed: the model did not commit
        ("", None),
    ],
)
def test_extracts_the_last_answer_block(output: str, expected: list[str] | None) -> None:
    assert extract_answer(output) == expected


def test_a_draft_answer_inside_the_thinking_never_counts() -> None:
    output = "<think>maybe <answer>1 1</answer>? no.</think>\nSo: <answer>2 3</answer>"
    assert extract_answer(output) == ["2", "3"]
    assert extract_answer("<think>try <answer>1 1</answer></think> I give up.") is None


def test_thinking_without_its_opening_tag_as_qwen3_emits_it() -> None:
    # The chat template puts "<think>" in the prompt, so the output starts inside the thought.
    output = "let me try <answer>9</answer> hmm\n</think>\n\n<answer>4 5</answer>"
    assert extract_answer(output) == ["4", "5"]
    assert strip_thinking(output).strip() == "<answer>4 5</answer>"


def test_generation_cut_off_while_thinking_has_no_answer() -> None:
    assert extract_answer("<think>first wave: <answer>6</answer> then") is None
    assert extract_answer("<answer>7</answer><think>double-check...") == ["7"]


def test_split_answer_tokens_drops_empty_pieces() -> None:
    assert split_answer_tokens(" | 1 ,2|3 \n") == ["1", "2", "3"]


def _release_two_stage(output: str) -> list[str] | None:
    """What the release's scripts make of an output without thinking, written out plainly.

    The inference script keeps the last <answer> block's whitespace-split tokens and writes
    them joined by spaces; the metric script turns commas, pipes and tabs into spaces, splits.
    """
    blocks = re.findall(r"<answer>(.*?)</answer>", output, flags=re.IGNORECASE | re.DOTALL)
    if not blocks:
        return None
    line = " ".join(blocks[-1].split())
    for separator in ",|\t":
        line = line.replace(separator, " ")
    return line.split()


def test_agrees_with_the_release_scripts_on_random_outputs() -> None:
    rng = random.Random(3)
    pieces = ["<answer>", "</answer>", "<ANSWER>", "12", "7", "x", ",", "|", " ", "\n", "\t", "ok"]
    for _ in range(2000):
        output = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        assert extract_answer(output) == _release_two_stage(output), output


def test_round_trips_any_token_list_through_any_separator() -> None:
    rng = random.Random(5)
    for _ in range(500):
        tokens = [str(rng.randint(0, 300)) for _ in range(rng.randint(1, 15))]
        separator = rng.choice([" ", ", ", ",", " | ", "|", "\n", " \t "])
        output = f"Reasoning... 3 + 4 = 7.\n<answer>{separator.join(tokens)}</answer>"
        assert extract_answer(output) == tokens


def test_never_raises_on_garbage() -> None:
    rng = random.Random(11)
    alphabet = "<>/answerthink ,|\n\t0123456789ÿ\x00"
    for _ in range(2000):
        output = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        result = extract_answer(output)
        assert result is None or all(token and not re.search(r"[\s,|]", token) for token in result)
