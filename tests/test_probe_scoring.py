"""The perception probe's scoring: reading a transcription reply, cells against the true grid,
rates per style and sample, and the split of T − I into reading and the rest."""

from __future__ import annotations

import pytest

from crossmath.metrics import evaluate_predictions
from crossmath.metrics.answers import answer_block
from crossmath.metrics.probe import (
    decompose,
    decomposition_metrics,
    score_probe,
    score_transcription,
)
from crossmath.metrics.transcription import TRANSCRIBED, Transcription, read_transcription
from crossmath.puzzle.grid import format_markdown_table, parse_markdown_grid

GRID = parse_markdown_grid("\n".join([
    "| 4 | + | ? | = | 9 |",
    "| × |   |   |   | - |",
    "| 2 |   |   |   | ? |",
    "| = |   |   |   | = |",
    "| ? | x | 1 | = | 8 |",
]))  # 25 cells: 5 numbers, 4 operators (one written x), 4 "=", 3 blanks, 9 empty cells


def reply(table: str) -> str:
    return f"Reading the picture row by row.\n<answer>\n{table}\n</answer>"


def test_a_reply_is_read_from_its_last_answer_block_cell_by_cell():
    text = ("| 4 | + | ? | = | 9 |\n|---|:-:|---|---|---|\n| × | | | | - |\n"
            "| 2 | | | | ? |\n| = | | | | = |\n| ? | * | 001 | = | 8 |")
    transcription = read_transcription("draft <answer>| 1 |</answer> then " + reply(text))
    assert transcription.rows[0] == ("4", "+", "?", "=", "9")  # the separator line is skipped
    assert transcription.rows[4] == ("?", "×", "1", "=", "8")  # aliases and zeros made canonical
    assert transcription.as_grid() == GRID
    assert transcription.fed_back() == GRID.to_markdown()


def test_without_an_answer_block_the_last_table_after_the_thinking_counts():
    output = "<think>| 9 | 9 |</think>First try:\n| 1 | 2 |\n\nBetter:\n| 4 | + |\n| ? | = |\ndone"
    assert read_transcription(output).rows == (("4", "+"), ("?", "="))
    assert read_transcription("<think>| 9 | 9 |</think> I cannot see a grid.") == Transcription(())


def test_what_is_not_a_grid_is_kept_as_written_and_fed_back_as_written():
    ragged = read_transcription(reply("| 4 | + | 7? |\n| = | 9 |"))
    assert ragged.rows == (("4", "+", "7?"), ("=", "9"))
    assert ragged.found and ragged.as_grid() is None
    assert ragged.fed_back() == format_markdown_table(ragged.rows)
    assert read_transcription("no table here").fed_back() == ""


def test_a_perfect_transcription_is_exact():
    score = score_transcription(read_transcription(reply(GRID.to_markdown(as_written=True))), GRID)
    assert score.exact and score.shape_ok and score.accuracy() == 1.0
    assert score.total == {"number": 5, "operator": 4, "equals": 4, "blank": 3, "empty": 9}


def test_two_numbers_swapped_cost_exactly_two_number_cells():
    swapped = GRID.to_markdown().replace("| 4 |", "| @ |").replace("| 2 |", "| 4 |").replace(
        "| @ |", "| 2 |")
    score = score_transcription(read_transcription(reply(swapped)), GRID)
    assert not score.exact and score.shape_ok
    assert score.accuracy() == pytest.approx(23 / 25)
    assert score.accuracy("number") == pytest.approx(3 / 5)
    assert score.accuracy("operator") == score.accuracy("blank") == 1.0


def test_shape_errors_are_reported_apart_and_cells_still_line_up_from_the_top_left():
    lines = GRID.to_markdown().splitlines()
    extra_row = score_transcription(read_transcription(reply("\n".join(lines + ["| | | | | |"]))),
                                    GRID)
    assert not extra_row.rows_ok and extra_row.columns_ok and extra_row.accuracy() == 1.0
    assert not extra_row.exact
    no_last_column = "\n".join(line.rsplit("|", 2)[0] + "|" for line in lines)
    narrow = score_transcription(read_transcription(reply(no_last_column)), GRID)
    assert narrow.rows_ok and not narrow.columns_ok
    assert narrow.accuracy() == pytest.approx(20 / 25)  # the five cells of the last column
    nothing = score_transcription(Transcription(()), GRID)
    assert not nothing.found and not nothing.shape_ok and nothing.accuracy() == 0.0


def prediction(puzzle_id: str, style: str, sample: int, output: str, **fields) -> dict:
    return {"puzzle_id": puzzle_id, "model": "m", "style": style, "sample": sample,
            "output": output, "error": None, **fields}


def test_rates_per_style_and_sample_pool_into_all_and_failures_hold_no_table():
    other = parse_markdown_grid("| 1 | + | ? | = | 3 |")
    grids = {"p1": GRID, "p2": other}
    perfect = {"p1": reply(GRID.to_markdown()), "p2": reply(other.to_markdown())}
    rows = [prediction(pid, "original", s, perfect[pid]) for pid in grids for s in (0, 1)]
    rows += [prediction("p1", "beige", 0, perfect["p1"]),
             prediction("p1", "beige", 1, "", error="timeout"),
             prediction("p2", "beige", 0, reply("| 1 | + | ? | = |"))]  # p2 sample 1: missing
    summary = score_probe(rows, grids, samples=2)
    assert summary.styles("m") == ["original", "beige", "all"]
    original = summary.group("m", "original")
    assert original.metric("cell_acc").mean == 100.0 and original.metric("exact_rate").mean == 100.0
    beige = summary.group("m", "beige")
    # sample 0: p1 exact, p2 four of five cells; sample 1: no table for either
    assert [run["cell_acc"] for run in beige.runs] == [pytest.approx((1 + 0.8) / 2), 0.0]
    assert [run["table_rate"] for run in beige.runs] == [1.0, 0.0]
    assert [run["column_error_rate"] for run in beige.runs] == [0.5, 1.0]
    assert beige.metric("empty_cell_acc") is not None
    pooled = summary.group("m")
    assert pooled.runs[0]["cell_acc"] == pytest.approx((1 + 1 + 1 + 0.8) / 4)
    flat = summary.flat_metrics("m")
    assert flat["probe/beige/table_rate"] == 50.0 and "probe/all/number_cell_acc_std" in flat
    with pytest.raises(ValueError, match="no true grid"):
        score_probe([prediction("p9", "original", 0, "")], grids, samples=1)
    assert type(summary).from_dict(summary.to_dict()) == summary


def test_reading_and_the_rest_add_up_to_the_image_gap():
    puzzles = [{"puzzle_id": f"p{i}", "answer": ["1"], "steps": [1], "difficulty": "easy"}
               for i in range(6)]
    right = {"text": range(6), TRANSCRIBED: range(4), "image": range(1)}  # puzzles answered right
    rows = [{"puzzle_id": f"p{i}", "model": "m", "modality": modality,
             "style": "markdown" if modality == "text" else "original", "sample": 0,
             "output": answer_block(["1" if i in solved else "2"])}
            for modality, solved in right.items() for i in range(6)]
    evaluation = evaluate_predictions(rows, puzzles, n_resamples=200)
    (original, pooled) = decompose(evaluation, "m")
    assert (original.style, pooled.style) == ("original", "all")
    assert original.total.gap == pytest.approx(100 * 5 / 6)
    assert original.reading.gap == pytest.approx(100 * 2 / 6)
    assert original.reading.gap + original.rest.gap == pytest.approx(original.total.gap)
    assert original.reading_share == pytest.approx(2 / 5)
    assert decomposition_metrics(evaluation, "m")["probe/original/reading_share"] == \
        pytest.approx(2 / 5)
    assert evaluation.gap("m", "T-That", "macro_acc").estimate.ci_low <= 100 * 2 / 6
