"""The oracle and random baselines on the shared official sample and on grids made faulty."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import OFFICIAL_STYLES, REPO_ROOT
from hydra.utils import instantiate
from omegaconf import OmegaConf

from crossmath.metrics.transcription import TRANSCRIBE, read_transcription
from crossmath.models.base import ModelRequest, Prompt
from crossmath.models.baselines import OracleBackend, RandomBackend
from crossmath.models.prompts import puzzle_request
from crossmath.puzzle.grid import parse_markdown_grid
from crossmath.puzzle.records import OfficialRecord, read_official_jsonl

ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def answer_of(output: str) -> list[str] | None:
    """The tokens of the last answer tag, or None when there is no tag."""
    found = ANSWER.findall(output)
    return found[-1].split() if found else None


def request_for(record: OfficialRecord, modality: str, sample: int = 0) -> ModelRequest:
    grid = record.grid()
    return puzzle_request(
        f"{record.name}/{modality}/{sample}", modality, record.fields["markdown_table"],
        image=None if modality == "text" else record.image_blank_path.read_bytes(),
        sample=sample, n_blanks=len(grid.blanks), value_range=tuple(record.fields["range"]),
    )


@pytest.fixture(scope="module")
def records(official_jsonl: Path) -> list[OfficialRecord]:
    found = read_official_jsonl(official_jsonl)
    assert len(found) == 12
    return found


# --- oracle -------------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["text", "hybrid"])
def test_oracle_answers_every_sample_puzzle_correctly(records, modality):
    requests = [request_for(record, modality) for record in records]
    responses = OracleBackend().generate(requests)
    assert [r.request_id for r in responses] == [r.request_id for r in requests]
    for record, response in zip(records, responses):
        assert response.error is None
        assert answer_of(response.output) == record.answer_tokens(), record.name
        # Shaped like a model's reply: some words before the tag.
        assert response.output.index("<answer>") > 0


@pytest.mark.parametrize("modality", ["image", TRANSCRIBE])
def test_oracle_gives_no_answer_to_image_only_requests(records, modality):
    """It has no eyes: no answer to an image, and no table for the probe's transcription."""
    requests = [replace(request_for(record, "image"), modality=modality) for record in records]
    responses = OracleBackend().generate(requests)
    assert all(answer_of(r.output) is None and r.error is None for r in responses)
    assert all(r.output.strip() for r in responses)
    assert not any(read_transcription(r.output).found for r in responses)


def test_oracle_answers_every_style_of_the_sample(official_sample):
    for folder, name in OFFICIAL_STYLES.values():
        style_records = read_official_jsonl(official_sample / folder / name)
        responses = OracleBackend().generate([request_for(r, "text") for r in style_records])
        assert [answer_of(r.output) for r in responses] == [
            r.answer_tokens() for r in style_records
        ], folder


def test_oracle_refuses_a_grid_made_contradictory(records):
    record = next(r for r in records if r.name == "math_puzzle_0003")
    table = record.fields["markdown_table"]
    # Row 3 reads "? ÷ 3 = 31" (the blank is 93); "? × 3 = 31" has no integer solution.
    broken = table.replace("| ? | ÷ | 3 | = | 31 |", "| ? | × | 3 | = | 31 |")
    assert broken != table
    request = puzzle_request("broken", "text", broken, n_blanks=4, value_range=(3, 115))
    [response] = OracleBackend().generate([request])
    assert answer_of(response.output) is None
    assert "no consistent solution" in response.output
    assert response.error is None


def test_oracle_refuses_a_sample_grid_made_ambiguous(records):
    record = next(r for r in records if r.name == "math_puzzle_0003")
    grid = record.grid()
    # Blank the given 3 of "? ÷ 3 = 31" / "? + 3 = 9": then 62 ÷ 2 = 31 with 7 + 2 = 9 fits
    # as well as 93 ÷ 3 = 31 with 6 + 3 = 9, so the grid has several solutions.
    three = next(p for p in grid.positions() if grid[p] == "3")
    rows = [list(row) for row in grid.cells]
    rows[three[0]][three[1]] = "?"
    ambiguous = type(grid).from_rows(rows).to_markdown()
    request = puzzle_request("ambiguous", "hybrid", ambiguous, image=b"png")
    [response] = OracleBackend().generate([request])
    assert answer_of(response.output) is None
    assert "more than one solution" in response.output


@pytest.mark.parametrize(
    "table",
    [
        "| ? | + | ? | = | 10 |",  # two unknowns, one equation
        "| ? | × | 0 | = | 0 |",  # any value times zero
    ],
)
def test_oracle_refuses_small_ambiguous_grids(table):
    [response] = OracleBackend().generate([puzzle_request("x", "text", table)])
    assert answer_of(response.output) is None


def test_oracle_answers_a_small_unique_grid():
    [response] = OracleBackend().generate([puzzle_request("x", "text", "| 7 | × | ? | = | 42 |")])
    assert answer_of(response.output) == ["6"]


def test_oracle_reports_an_unreadable_grid_as_no_answer():
    [response] = OracleBackend().generate([puzzle_request("x", "text", "| 1 | @ | 2 | = | 3 |")])
    assert response.error is None
    assert answer_of(response.output) is None
    assert "cannot be read" in response.output and "'@'" in response.output


# --- random -------------------------------------------------------------------------------


def test_random_guesses_in_range_with_one_value_per_blank(records):
    requests = [request_for(record, modality) for record in records
                for modality in ("text", "image", "hybrid")]
    responses = RandomBackend(seed=3).generate(requests)
    assert [r.request_id for r in responses] == [r.request_id for r in requests]
    for request, response in zip(requests, responses):
        guess = answer_of(response.output)
        assert guess is not None and len(guess) == request.n_blanks
        low, high = request.value_range
        assert all(low <= int(value) <= high for value in guess)


def test_random_is_deterministic_per_seed_and_request_not_per_batch(records):
    requests = [request_for(record, "text", sample) for record in records for sample in (0, 1)]
    first = [r.output for r in RandomBackend(seed=7).generate(requests)]
    again_reversed = [r.output for r in RandomBackend(seed=7).generate(requests[::-1])]
    assert again_reversed[::-1] == first
    one_by_one = [RandomBackend(seed=7).generate([r])[0].output for r in requests]
    assert one_by_one == first
    other_seed = [r.output for r in RandomBackend(seed=8).generate(requests)]
    assert other_seed != first
    # Samples of one puzzle are distinct requests, so they get their own guesses.
    assert len(set(first)) == len(first)


def test_random_scores_at_chance_on_the_sample(records):
    # With 4 to 15 blanks in ranges of ~100 values, an exact match is (1/100)^4 at best.
    responses = RandomBackend(seed=0).generate([request_for(r, "text") for r in records])
    exact = sum(answer_of(resp.output) == rec.answer_tokens()
                for rec, resp in zip(records, responses))
    assert exact == 0


def test_random_falls_back_to_the_grid_for_blank_count_and_range():
    table = "| ? | + | 12 | = | ? |\n| × |   |   |   |   |\n| 40 |   |   |   |   |"
    # One blank fewer would be wrong: the fallback counts the grid's two '?' cells.
    request = puzzle_request("fallback", "text", table)
    outputs = [RandomBackend(seed=s).generate([request])[0].output for s in range(30)]
    guesses = [answer_of(output) for output in outputs]
    assert all(len(g) == 2 for g in guesses)
    values = {int(v) for g in guesses for v in g}
    assert values <= set(range(12, 41)) and len(values) > 5


def test_random_picks_an_option_letter_of_a_multiple_choice_question_at_chance():
    requests = [ModelRequest(f"q{i}", Prompt(("Which?",)), options=("A", "B", "C", "D"))
                for i in range(400)]
    letters = Counter(answer_of(r.output)[0] for r in RandomBackend().generate(requests))
    assert set(letters) == {"A", "B", "C", "D"} and min(letters.values()) > 60
    assert [r.output for r in RandomBackend().generate(requests[:5])] == [
        r.output for r in RandomBackend().generate(requests[:5])]


def test_random_without_blanks_gives_no_answer():
    [response] = RandomBackend().generate([puzzle_request("x", "image", "", image=b"png")])
    assert answer_of(response.output) is None and response.error is None


# --- configs ------------------------------------------------------------------------------


@pytest.mark.parametrize("config, kind", [("oracle", OracleBackend), ("random", RandomBackend)])
def test_baseline_configs_instantiate(config, kind):
    cfg = OmegaConf.load(REPO_ROOT / "conf" / "model" / f"{config}.yaml")
    backend = instantiate(cfg)
    assert isinstance(backend, kind)
    assert backend.name == config
    table = "| 7 | × | ? | = | 42 |"
    assert parse_markdown_grid(table).blanks
    [response] = backend.generate([puzzle_request("r", "text", table, n_blanks=1,
                                                  value_range=(1, 50))])
    assert answer_of(response.output) is not None
