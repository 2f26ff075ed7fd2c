"""The GRPO reward against hand-computed values: depth weights, missing and extra tokens, no answer."""

from __future__ import annotations

import pytest

from crossmath.finetuning.rewards import StepWeightedReward

GOLD = ["12", "5", "30"]
STEPS = [1, 2, 3]  # weights w = depth: 1, 2, 3 (sum 6)
ROW = {"answer": GOLD, "steps": STEPS}


def test_default_weights_are_the_depth() -> None:
    reward = StepWeightedReward()
    assert reward.score(["12", "5", "30"], GOLD, STEPS) == 1.0
    assert reward.score(["12", "5", "31"], GOLD, STEPS) == pytest.approx(3 / 6)  # depth 3 wrong
    assert reward.score(["0", "5", "30"], GOLD, STEPS) == pytest.approx(5 / 6)  # depth 1 wrong
    assert reward.score(["0", "0", "30"], GOLD, STEPS) == pytest.approx(3 / 6)
    assert reward.score(["5", "12", "30"], GOLD, STEPS) == pytest.approx(3 / 6)  # by position
    assert reward.score(["1", "2", "3"], GOLD, STEPS) == 0.0


def test_missing_tokens_are_wrong_and_extra_tokens_are_ignored() -> None:
    reward = StepWeightedReward()
    assert reward.score(["12"], GOLD, STEPS) == pytest.approx(1 / 6)
    assert reward.score(["12", "5"], GOLD, STEPS) == pytest.approx(3 / 6)
    assert reward.score(["12", "5", "30", "99", "7"], GOLD, STEPS) == 1.0
    assert reward.score([], GOLD, STEPS) == 0.0  # <answer></answer>


def test_tokens_compare_as_strings_like_the_release() -> None:
    assert StepWeightedReward().score(["12", "05", "30.0"], GOLD, STEPS) == pytest.approx(1 / 6)


def test_output_text_goes_through_the_release_extraction() -> None:
    reward = StepWeightedReward()
    assert reward(ROW, "12 5 30") == 0.0  # no answer block
    assert reward(ROW, "<answer>12 5 30") == 0.0  # cut off before the closing tag
    assert reward(ROW, "first <answer>1 2 3</answer>, then <answer>12 5 30</answer>") == 1.0
    assert reward(ROW, "<ANSWER>12, 5 | 31</ANSWER>") == pytest.approx(3 / 6)
    assert reward(ROW, "<answer>12 5 30</answer> and later <answer>12</answer>") == pytest.approx(1 / 6)


def test_configured_weights_per_depth_and_deeper_blanks_take_the_last() -> None:
    flat = StepWeightedReward(step_weights=(1.0,))
    assert flat.score(["12", "0", "0"], GOLD, STEPS) == pytest.approx(1 / 3)
    steep = StepWeightedReward(step_weights=(1.0, 4.0, 10.0))
    assert steep.score(["0", "0", "30"], GOLD, STEPS) == pytest.approx(10 / 15)
    two = StepWeightedReward(step_weights=(1.0, 2.0))  # depth 3 weighs 2
    assert two.score(["0", "0", "30"], GOLD, STEPS) == pytest.approx(2 / 5)
    deep = [1, 7, 4]
    assert StepWeightedReward().score(["12", "0", "0"], GOLD, deep) == pytest.approx(1 / 12)
    assert StepWeightedReward.from_mapping({"step_weights": [1, 4, 10]}) == steep


def test_the_format_term_rewards_exactly_one_token_per_blank() -> None:
    reward = StepWeightedReward(format_weight=0.2)
    assert reward.score(["12", "5", "31"], GOLD, STEPS) == pytest.approx(0.8 * 0.5 + 0.2)
    assert reward.score(["12", "5", "30", "7"], GOLD, STEPS) == pytest.approx(0.8)
    assert reward.score(["12", "5"], GOLD, STEPS) == pytest.approx(0.8 * 0.5)
    assert reward.score(None, GOLD, STEPS) == 0.0
    assert reward(ROW, "no tag at all") == 0.0


def test_bad_settings_and_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        StepWeightedReward(step_weights=(1.0, -1.0))
    with pytest.raises(ValueError, match="all 0"):
        StepWeightedReward(step_weights=(0.0,))
    with pytest.raises(ValueError, match="format_weight"):
        StepWeightedReward(format_weight=1.0)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['weights'\]"):
        StepWeightedReward.from_mapping({"weights": [1]})
    with pytest.raises(ValueError, match="depth .* at least 1"):
        StepWeightedReward().score(["1"], ["1"], [0])
    with pytest.raises(ValueError, match="2 step labels for 3 gold tokens"):
        StepWeightedReward().score(["1"], GOLD, [1, 2])
    with pytest.raises(ValueError, match="no weight"):
        StepWeightedReward(step_weights=(0.0, 1.0)).score(["1"], ["1"], [1])


def test_the_overlong_term_charges_completions_that_near_the_cap() -> None:
    """DAPO's soft overlong punishment: free up to cap - buffer, a linear ramp over the buffer,
    the whole penalty when truncated; off (0) by default."""
    reward = StepWeightedReward(overlong_buffer=4)
    assert [reward.overlong_penalty(n, 10, False) for n in (3, 6, 7, 8, 10)] == [0.0, 0.0, 0.25, 0.5, 1.0]
    assert reward.overlong_penalty(10, 10, True) == 1.0
    assert StepWeightedReward().overlong_penalty(10, 10, True) == 0.0
    assert StepWeightedReward.from_mapping({"overlong_buffer": 4}) == reward
    with pytest.raises(ValueError, match="overlong_buffer must be >= 0"):
        StepWeightedReward(overlong_buffer=-1)
