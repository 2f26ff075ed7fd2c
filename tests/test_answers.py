"""Answer extraction: the release's rule end to end, its log-line rule, and our two variants.

The reference below is a plain transcription of what the release's two scripts do (read off
``batch_inference_qwen35.py`` and ``calc_metric.py``), not an import of the code under test:
the primary rule must give the release's tokens for every output.
"""

from __future__ import annotations

import io
import random
import re

import pytest

from crossmath.metrics.accuracy import score_answer
from crossmath.metrics.answers import (
    answer_block,
    extract_answer,
    extract_answer_after_thinking,
    extract_lenient_answer,
    lenient_tokens,
    parse_release_line,
    split_answer_tokens,
    strip_thinking,
)

# ---------------------------------------------------------------- the release, transcribed


RELEASE_PATTERN = r"<answer>\s*(.*?)\s*</answer>"


def release_log_line(output: str) -> str:
    """batch_inference_qwen35.py: the last block's whitespace tokens joined by spaces, or 'No Answer'."""
    matches = re.findall(RELEASE_PATTERN, output, flags=re.DOTALL | re.IGNORECASE)
    if not matches:
        return "No Answer"
    return " ".join(str(token) for token in matches[-1].strip().split())


def release_metric_tokens(line: str) -> list[str]:
    """calc_metric.py's normalize_pred_line: the first block of the line if any, then its split."""
    line = line.strip()
    match = re.search(r"<answer>(.*?)</answer>", line, flags=re.IGNORECASE | re.DOTALL)
    if match is not None:
        line = match.group(1).strip()
    line = re.sub(r"[|,\t]+", " ", line)
    line = re.sub(r"\s+", " ", line).strip()
    if not line:
        return []
    return line.split(" ")


def release_tokens(output: str) -> list[str] | None:
    """Both scripts in a row, through a log file read back as the metric reads it (text mode).

    For an output without a block the inference script writes 'No Answer', which the metric
    reads as the tokens 'No' and 'Answer' (never equal to a number); we call that None.
    """
    (line,) = io.StringIO(release_log_line(output) + "\n", newline=None).readlines()
    tokens = release_metric_tokens(line)
    if not re.findall(RELEASE_PATTERN, output, flags=re.DOTALL | re.IGNORECASE):
        assert tokens == ["No", "Answer"]
        return None
    return tokens


# Outputs of many shapes, each with the tokens worked out by hand.
REALISTIC_OUTPUTS: list[tuple[str, list[str] | None]] = [
    ("Row 1: 3 + 4 = 7, so the blank is 7.\n<answer>7 12 5</answer>", ["7", "12", "5"]),
    ("I will not use <think> tags here. <answer>19 4 45</answer>", ["19", "4", "45"]),  # issue #11
    ("<think>\nfirst wave gives 6\n</think>\n<answer>6 93 45 8</answer>", ["6", "93", "45", "8"]),
    ("<think>draft: <answer>1 1</answer></think>\nFinal: <answer>2 3</answer>", ["2", "3"]),
    ("<think>draft: <answer>1 1</answer> hmm, let me keep checking the second column", ["1", "1"]),
    ("<answer>1 2</answer><think>double-check ... fine", ["1", "2"]),
    ("so the answer is\n</think>\n<answer>4 5</answer>", ["4", "5"]),  # opening tag in the prompt
    ("First <answer>1 2 3</answer>. Wait, row 2 is wrong. <answer>1 5 3</answer>", ["1", "5", "3"]),
    ("<answer>1 2</answer> and then <answer>", ["1", "2"]),  # a later opening never closed
    ("<answer>12 7 35", None),  # cut off before the closing tag
    ("The answer: 12 7 35", None),
    ("<answer>12, 7, 35</answer>", ["12", "7", "35"]),
    ("<answer>12 | 7 | 35</answer>", ["12", "7", "35"]),
    ("<answer>\n12\n7\n35\n</answer>", ["12", "7", "35"]),
    ("<answer>\t12\t\t7 ,|, 35\t</answer>", ["12", "7", "35"]),
    ("<answer>$12$ $7$</answer>", ["$12$", "$7$"]),
    ("<answer>**12 7 35**</answer>", ["**12", "7", "35**"]),
    ("<answer>\\boxed{12, 7, 35}</answer>", ["\\boxed{12", "7", "35}"]),
    ("\\boxed{12 7 35}", None),
    ("<answer>12; 7; 35.</answer>", ["12;", "7;", "35."]),
    ("<answer>07 7.0 x=3 −5</answer>", ["07", "7.0", "x=3", "−5"]),
    ("<answer></answer>", []),
    ("<answer>   </answer>", []),
    ("<answer> , | </answer>", []),
    ("<ANSWER>5 6</Answer>", ["5", "6"]),
    ("<Answer>\n5\n</ANSWER> ok", ["5"]),
    ("<anſwer>8 9</answer>", ["8", "9"]),  # Python's IGNORECASE folds the long s to s, as the release's does
    ("<answer >5 6</answer>", None),  # a space inside the tag is not the tag
    ("< answer>5 6</answer>", None),
    ("<answer>5 6</ answer>", None),
    ("<answer>a <answer>1 2</answer>", ["a", "<answer>1", "2"]),  # openings inside count as text
    ("<answer>1</answer></answer>2</answer>", ["1"]),
    ("</answer><answer>3 4</answer>", ["3", "4"]),
    ("<answer>1 2</answer><|im_end|><|endoftext|>", ["1", "2"]),  # special tokens left in the text
    ("<answer>12\u00a07\u300035\u20284</answer>", ["12", "7", "35", "4"]),  # NBSP, ideographic space, LS
    ("<answer>１２ ７</answer>", ["１２", "７"]),  # full-width digits stay themselves
    ("<answer>12\x1c7\x1f35</answer>", ["12", "7", "35"]),  # separator controls are whitespace to both
    ("```\n<answer>3 4</answer>\n```", ["3", "4"]),
    ("Use the format <answer>v1 v2 ...</answer>; mine: <answer>9 8</answer>", ["9", "8"]),
    ("Use the format <answer>v1 v2 ...</answer>. I cannot see the image.", ["v1", "v2", "..."]),
    ("<answer>No Answer</answer>", ["No", "Answer"]),
    ("", None),
]


@pytest.mark.parametrize(("output", "expected"), REALISTIC_OUTPUTS)
def test_primary_rule_is_the_release_rule_on_realistic_outputs(output: str, expected: list[str] | None) -> None:
    assert release_tokens(output) == expected  # the hand-worked expectation is the release's
    assert extract_answer(output) == expected


def test_primary_rule_equals_the_release_on_random_outputs() -> None:
    rng = random.Random(3)
    pieces = ["<answer>", "</answer>", "<ANSWER>", "</Answer>", "<think>", "</think>", "<answer",
              "12", "7", "x", "07", "-3", "\\boxed{", "}", "**", "$", ",", "|", ".", " ", "\n",
              "\t", "\u00a0", "\u3000", "\r\n", "\x0b", "ok", "<|im_end|>", "ſ", "é"]
    for _ in range(5000):
        output = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert extract_answer(output) == release_tokens(output), repr(output)


def test_every_token_list_round_trips_through_any_separator() -> None:
    rng = random.Random(5)
    for _ in range(500):
        tokens = [str(rng.randint(0, 300)) for _ in range(rng.randint(1, 15))]
        separator = rng.choice([" ", ", ", ",", " | ", "|", "\n", " \t "])
        output = f"Reasoning... 3 + 4 = 7.\n<answer>{separator.join(tokens)}</answer>"
        assert extract_answer(output) == tokens
    assert extract_answer(answer_block([3, 14, 15])) == ["3", "14", "15"]


def test_never_raises_on_garbage_and_stays_fast_on_degenerate_outputs() -> None:
    rng = random.Random(11)
    alphabet = "<>/answerthink ,|\n\t0123456789ÿ\x00{}\\boxed$*"
    for _ in range(2000):
        output = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        for rule in (extract_answer, extract_answer_after_thinking, extract_lenient_answer):
            result = rule(output)
            assert result is None or all(token and not re.search(r"[\s,|]", token) for token in result)
    # A model stuck in a loop: thousands of unclosed openings (a backtracking regex takes
    # seconds on this), and a 5,000-digit number (int() refuses it).
    assert extract_answer("<answer> 1 " * 8000) is None
    assert extract_lenient_answer("<answer>" + "9" * 5000) == ["9" * 5000]


def test_split_answer_tokens_drops_empty_pieces() -> None:
    assert split_answer_tokens(" | 1 ,2|3 \n") == ["1", "2", "3"]


# ---------------------------------------------------------------- release log lines


def test_a_log_line_reads_as_the_release_metric_reads_it() -> None:
    rng = random.Random(8)
    pieces = ["<answer>", "</answer>", "<ANSWER>", "1", "22", "x", ",", "|", "\t", " ", "No", "Answer"]
    for _ in range(3000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        expected = release_metric_tokens(line)
        ours = parse_release_line(line + "\n")
        if line.strip() == "No Answer":
            assert ours is None and expected == ["No", "Answer"]
        else:
            assert ours == expected, repr(line)


def test_a_line_takes_its_first_block_where_an_output_takes_its_last() -> None:
    text = "<answer>1 2</answer> <answer>3 4</answer>"
    assert parse_release_line(text) == ["1", "2"]
    assert extract_answer(text) == ["3", "4"]


def test_the_release_no_answer_line_scores_as_no_answer() -> None:
    gold, steps = ["3", "4"], [1, 2]
    as_release = score_answer(release_metric_tokens("No Answer"), gold, steps)
    ours = score_answer(parse_release_line("No Answer\n"), gold, steps)
    assert (as_release.exact, as_release.n_correct) == (ours.exact, ours.n_correct) == (False, 0)


# ---------------------------------------------------------------- thinking-aware variant


def test_after_thinking_a_draft_inside_the_thinking_never_counts() -> None:
    output = "<think>maybe <answer>1 1</answer>? no.</think>\nSo: <answer>2 3</answer>"
    assert extract_answer_after_thinking(output) == ["2", "3"]
    cut_off = "<think>try <answer>1 1</answer> then check the next row"
    assert extract_answer(cut_off) == ["1", "1"]  # the release scores the draft
    assert extract_answer_after_thinking(cut_off) is None
    assert extract_answer_after_thinking("<think>try <answer>1 1</answer></think> I give up.") is None


def test_thinking_without_its_opening_tag_as_qwen3_emits_it() -> None:
    output = "let me try <answer>9</answer> hmm\n</think>\n\n<answer>4 5</answer>"
    assert extract_answer_after_thinking(output) == ["4", "5"]
    assert strip_thinking(output).strip() == "<answer>4 5</answer>"
    assert extract_answer_after_thinking("<answer>7</answer><think>double-check...") == ["7"]


# ---------------------------------------------------------------- lenient reading


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("<answer>$12$, $7$, $35$</answer>", ["12", "7", "35"]),
        ("<answer>**12 7 35**</answer>", ["12", "7", "35"]),
        ("<answer>\\boxed{12, 7, 35}</answer>", ["12", "7", "35"]),
        ("<answer>\\( \\boxed{\\text{12}} \\quad 7 \\)</answer>", ["12", "7"]),
        ("<answer>12. 7; 35!</answer>", ["12", "7", "35"]),
        ("<answer>$12$, $35$.</answer>", ["12", "35"]),
        ("<answer>07 +7 −5 \uff0d0</answer>", ["7", "7", "-5", "0"]),
        ("<answer>`12` `7`</answer>", ["12", "7"]),
        ("<answer>? 7</answer>", ["?", "7"]),  # a placeholder keeps the next value in place
        ("<answer>7.0 x=3 1,234</answer>", ["7.0", "x=3", "1", "234"]),  # not formatting
        ("<answer>12 7", ["12", "7"]),  # never closed
        ("<answer>1 <answer>2 3", ["2", "3"]),  # the last opening
        ("< answer >12 7</ answer >", ["12", "7"]),
        ("<answer>12 7<\\answer>", ["12", "7"]),
        ("<answer>12 7</answer", ["12", "7"]),
        ("So the blanks are \\boxed{12, 7, 35}.", ["12", "7", "35"]),
        ("\\boxed{1} then \\boxed{\\{2\\}, 3}", ["2", "3"]),
        ("<answer></answer> \\boxed{1 2}", []),  # a committed empty answer stays empty
        ("<answer>1 2</answer> < answer >3 4</answer>", ["1", "2"]),  # the primary block first
        ("no answer here: 12 7 35", None),
    ],
)
def test_lenient_reading(output: str, expected: list[str] | None) -> None:
    assert extract_lenient_answer(output) == expected


def test_lenient_never_turns_a_right_answer_wrong() -> None:
    rng = random.Random(21)
    for _ in range(2000):
        gold = [str(rng.randint(0, 250)) for _ in range(rng.randint(1, 8))]
        noise = ["<answer>", "</answer>", "$", "**", " ", ",", "7", "07", "\\boxed{", "}", "."]
        output = "".join(rng.choice(noise) for _ in range(rng.randint(0, 6)))
        output += rng.choice(["", "<answer>" + " ".join(gold) + "</answer>"])
        output += "".join(rng.choice(noise) for _ in range(rng.randint(0, 6)))
        if extract_answer(output) == gold:
            assert extract_lenient_answer(output) == gold, repr(output)


def test_lenient_tokens_keep_digits_and_order() -> None:
    assert lenient_tokens("**3**, $14$ | \\textbf{15}.") == ["3", "14", "15"]
    assert lenient_tokens("") == []
