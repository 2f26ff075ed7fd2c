"""Planning backend calls: capacity from the model config, full calls, samples kept together."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from conftest import REPO_ROOT
from omegaconf import OmegaConf

from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.pipeline.calls import (
    CHARS_PER_TEXT_TOKEN,
    RULE_BASED_CALL,
    CallCapacity,
    call_requests,
    call_table,
    estimated_prompt_tokens,
    image_tokens,
    model_capacity,
    plan_calls,
)
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.settings.checks import resolved_styles
from crossmath.tasks.crossmath.requests import RequestPlan

PUZZLES = generate_puzzles(12, "mixed", seed=3)
STYLES = resolved_styles(["original", "altstyle"])


def units(samples: int, modalities=("text", "image", "hybrid"), puzzles=PUZZLES) -> list[dict]:
    plan = RequestPlan(list(modalities), STYLES, samples, load_prompt_template(DEFAULT_PROMPT), "m")
    return plan.units(puzzles)


def model_config(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "conf" / "model" / f"{name}.yaml"))


def estimate(unit: dict, request: dict, bounds: tuple[int, int] | None) -> int:
    """The planner's token estimate of one request of ``unit``."""
    return estimated_prompt_tokens(request, image_tokens(unit, bounds, STYLES))


def prompts_of(call: dict) -> Counter:
    """How many requests of each prompt (puzzle, style, modality) the call asks."""
    return Counter((unit["puzzle_id"], unit["style"], request["modality"])
                   for unit in call["units"] for request in unit["requests"])


def test_capacity_comes_from_the_model_config():
    hf = model_capacity(model_config("qwen2.5-vl-3b"))
    assert hf.sequences == 64 and hf.pixel_bounds == (200704, 1003520)
    assert hf.new_tokens == model_config("qwen2.5-vl-3b")["max_new_tokens"]
    assert model_capacity(model_config("qwen3.5-9b")).sequences == 32
    client = model_capacity(model_config("openai"))
    assert client.sequences == 16
    assert client.pixel_bounds is None
    assert model_capacity(model_config("oracle")).sequences == RULE_BASED_CALL
    overridden = model_capacity(model_config("qwen2.5-vl-3b"), sequences=8, tokens=50_000)
    assert (overridden.sequences, overridden.tokens) == (8, 50_000)
    with pytest.raises(ValueError, match="at least one sequence"):
        CallCapacity(0)


@pytest.mark.parametrize("samples, capacity", [(1, 10), (4, 10), (3, 16)])
def test_every_request_lands_once_in_calls_that_are_full_but_the_last(samples, capacity):
    planned = units(samples)
    calls = plan_calls(planned, CallCapacity(capacity), STYLES)
    asked = [r["request_id"] for call in calls for u in call["units"] for r in u["requests"]]
    assert sorted(asked) == sorted(r["request_id"] for u in planned for r in u["requests"])
    full = capacity - capacity % samples  # whole prompts only
    assert [call["sequences"] for call in calls[:-1]] == [full] * (len(calls) - 1)
    assert 0 < calls[-1]["sequences"] <= full
    assert [call["call"] for call in calls] == list(range(len(calls)))
    seen = Counter()
    for call in calls:  # a prompt's samples all travel in one call
        for prompt, count in prompts_of(call).items():
            assert count == samples
            seen[prompt] += 1
    assert set(seen.values()) == {1}
    for call in calls:
        assert sum(prompts_of(call).values()) == call["sequences"]


def test_a_prompt_with_more_samples_than_a_call_is_split():
    planned = units(5, modalities=("text",), puzzles=PUZZLES[:2])
    calls = plan_calls(planned, CallCapacity(2), STYLES)
    assert [call["sequences"] for call in calls] == [2, 2, 1, 2, 2, 1]
    assert all(len(prompts_of(call)) == 1 for call in calls)


def test_longest_prompts_go_first_and_a_token_budget_shrinks_calls():
    planned = units(1)
    bounds = (64 * 28 * 28, 256 * 28 * 28)
    calls = plan_calls(planned, CallCapacity(6, pixel_bounds=bounds), STYLES)
    lengths = [estimate(u, r, bounds) for c in calls for u in c["units"]
               for r in u["requests"]]
    per_call = [[estimate(u, r, bounds) for u in c["units"] for r in u["requests"]]
                for c in calls]
    assert min(per_call[0]) >= max(per_call[-1])
    assert sorted(lengths, reverse=True) == [length for call in per_call for length in
                                             sorted(call, reverse=True)]
    budget = CallCapacity(6, tokens=3 * (max(lengths) + 100), new_tokens=100, pixel_bounds=bounds)
    tight = plan_calls(planned, budget, STYLES)
    for call in tight:
        used = sum(estimate(u, r, bounds) + 100 for u in call["units"]
                   for r in u["requests"])
        assert used <= budget.tokens and call["sequences"] <= 6
    assert len(tight) > len(calls)
    assert sum(c["sequences"] for c in tight) == sum(c["sequences"] for c in calls)


def test_image_token_estimate_follows_grid_size_style_and_bounds():
    [text, image, hybrid] = [(u, r) for u in units(1, puzzles=PUZZLES[:1])[:2]
                             for r in u["requests"]]
    unbounded = estimate(*image, None)
    assert estimate(*hybrid, None) > unbounded > estimate(*text, None)
    assert estimate(*image, (10**7, 2 * 10**7)) > unbounded  # sized up to min
    image_text = sum(len(part) for part in image[1]["prompt_texts"])  # one image token left:
    assert estimate(*image, (1, 28 * 28)) == math.ceil(
        image_text / CHARS_PER_TEXT_TOKEN + 1)


def test_a_call_row_round_trips_through_arrow_and_expands_to_request_rows():
    [call] = plan_calls(units(2, modalities=("image",), puzzles=PUZZLES[:1]), CallCapacity(64),
                        STYLES)
    for unit in call["units"]:
        unit["images"] = [b"png"]
    table = call_table(call)
    assert table.num_rows == 1
    [back] = table.to_pylist()
    rows = call_requests(back)
    assert len(rows) == 2 * len(STYLES) and {row["sample"] for row in rows} == {0, 1}
    assert rows[0]["images"] == [b"png"] and rows[0]["image_at"] == [0]
    assert "requests" not in rows[0] and "image_path" not in rows[0]
    call["units"][0]["colour"] = "blue"
    with pytest.raises(ValueError, match=r"call 0: unit field\(s\) \['colour'\]"):
        call_table(call)
