"""Format diagnostics and the lenient score: per answer, per run, and through a scorecard."""

from __future__ import annotations

import pytest

from crossmath.metrics import evaluate_predictions
from crossmath.metrics.diagnostics import check_answer, is_plain_integer, run_format

GOLD, STEPS = ["7", "4"], [1, 2]


def test_plain_integers_are_written_as_gold_values_are() -> None:
    assert all(is_plain_integer(token) for token in ("0", "7", "250", "1000000"))
    for token in ("07", "00", "-3", "+7", "7.", "7.0", "3/4", "٣", "１", "", " 7", "x"):
        assert not is_plain_integer(token), token


def test_check_answer_by_hand() -> None:
    failed = check_answer(None, None, GOLD, STEPS)
    assert (failed.failed, failed.tagged, failed.score.n_correct, failed.lenient.n_correct) == (True, False, 0, 0)
    right = check_answer("<answer>7 4</answer>", ["7", "4"], GOLD, STEPS)
    assert (right.failed, right.tagged, right.count_matches, right.integers_only) == (False, True, True, True)
    assert right.score.exact and right.lenient.exact
    short = check_answer("<answer>7</answer>", ["7"], GOLD, STEPS)
    assert (short.tagged, short.count_matches, short.integers_only) == (True, False, True)
    padded = check_answer("<answer>07 4.</answer>", ["07", "4."], GOLD, STEPS)
    assert (padded.count_matches, padded.integers_only) == (True, False)
    assert not padded.score.exact and padded.lenient.exact  # a formatting miss, not a reasoning one
    empty = check_answer("<answer></answer>", [], GOLD, STEPS)
    assert (empty.tagged, empty.count_matches, empty.integers_only) == (True, False, True)
    untagged = check_answer("so \\boxed{7, 4}", None, GOLD, STEPS)
    assert (untagged.failed, untagged.tagged, untagged.count_matches) == (False, False, False)
    assert not untagged.score.answered and untagged.lenient.exact


def test_run_format_counts_and_rates() -> None:
    checks = [
        check_answer(None, None, GOLD, STEPS),                              # failed
        check_answer("no tags at all", None, GOLD, STEPS),                  # untagged
        check_answer("<answer>7 4</answer>", ["7", "4"], GOLD, STEPS),      # right
        check_answer("<answer>7 4 1</answer>", ["7", "4", "1"], GOLD, STEPS),  # wrong count
        check_answer("<answer>$7$ 4</answer>", ["$7$", "4"], GOLD, STEPS),  # non-integer
    ]
    run = run_format(checks)
    assert (run.n_requests, run.n_failed, run.n_tagged, run.n_wrong_count, run.n_non_integer) == (5, 1, 3, 1, 1)
    rates = run.rates()
    assert rates["error_rate"] == pytest.approx(1 / 5)
    assert rates["answer_tag_rate"] == pytest.approx(3 / 4)
    assert rates["wrong_count_rate"] == pytest.approx(1 / 3)
    assert rates["non_integer_rate"] == pytest.approx(1 / 3)
    assert rates["lenient_macro_acc"] == pytest.approx(2 / 5)  # right, and $7$ 4 once forgiven
    assert rates["lenient_micro_acc"] == pytest.approx((0 + 0 + 1 + 1 + 1) / 5)
    nothing = run_format([check_answer(None, None, GOLD, STEPS)]).rates()
    assert nothing["error_rate"] == 1.0
    assert nothing["answer_tag_rate"] is None and nothing["wrong_count_rate"] is None
    assert type(run).from_dict(run.to_dict()) == run


# ---------------------------------------------------------------- through a scorecard


PUZZLES = [
    {"puzzle_id": "a", "answer": ["1", "2"], "steps": [1, 1], "difficulty": "easy"},
    {"puzzle_id": "b", "answer": ["3", "4", "5"], "steps": [1, 2, 3], "difficulty": "hard"},
]


def _row(pid: str, modality: str, sample: int, output: str, error: str | None = None, pred=None) -> dict:
    return {"puzzle_id": pid, "model": "m", "modality": modality, "style": "original",
            "sample": sample, "output": output, "error": error, "pred": pred}


def _predictions() -> list[dict]:
    """Text always right; image with every kind of format trouble, worked out by hand below."""
    rows = [_row("a", "text", s, "<answer>1 2</answer>") for s in (0, 1)]
    rows += [_row("b", "text", s, "Reasoning.\n<answer>3 4 5</answer>") for s in (0, 1)]
    rows += [
        # A stored pred from an older rule must not matter: the output is read again.
        _row("a", "image", 0, "<think><answer>9 9</answer></think> <answer>1 2</answer>", pred=["x"]),
        _row("b", "image", 0, "**3** 4 5, so \\boxed{3 4 5}"),  # no tag: wrong, right when lenient
        _row("a", "image", 1, "", error="timeout after 600 s"),  # failed
        _row("b", "image", 1, "<answer>03, 4, 5.</answer>"),  # tagged, non-integer, right when lenient
    ]
    return rows


def test_diagnostics_by_hand_beside_accuracy() -> None:
    ev = evaluate_predictions(_predictions(), PUZZLES, n_resamples=200)
    image = ev.group("m", "image", "original")
    # run 0: a right (tagged), b untagged.   run 1: a failed, b tagged with 03 and 5.
    assert [run.macro for run in image.runs] == pytest.approx([0.5, 0.0])
    rates = [run.rates() for run in image.formats]
    assert [r["answer_tag_rate"] for r in rates] == pytest.approx([1 / 2, 1 / 1])
    assert [r["error_rate"] for r in rates] == pytest.approx([0.0, 1 / 2])
    assert [r["wrong_count_rate"] for r in rates] == pytest.approx([0.0, 0.0])
    assert [r["non_integer_rate"] for r in rates] == pytest.approx([0.0, 1.0])
    assert [r["lenient_macro_acc"] for r in rates] == pytest.approx([1.0, 0.5])
    flat = ev.flat_metrics()
    assert flat["image/original/macro_acc"] == pytest.approx(25.0)  # the primary score is unchanged
    assert flat["image/original/answer_tag_rate"] == pytest.approx(75.0)
    assert flat["image/original/error_rate"] == pytest.approx(25.0)
    assert flat["image/original/non_integer_rate"] == pytest.approx(50.0)
    assert flat["image/original/lenient_macro_acc"] == pytest.approx(75.0)
    assert flat["image/original/hard/lenient_macro_acc"] == pytest.approx(100.0)
    assert flat["text/original/lenient_macro_acc"] == flat["text/original/macro_acc"] == 100.0
    # Gaps per puzzle: text 100, 100; image macro a 50, b 0; image lenient a 50, b 100.
    assert flat["gap/T-I/macro_acc"] == pytest.approx((50 + 100) / 2)
    assert flat["gap/T-I/lenient_macro_acc"] == pytest.approx((50 + 0) / 2)


def test_a_missing_prediction_is_a_failed_request() -> None:
    rows = [r for r in _predictions() if not (r["modality"] == "image" and r["sample"] == 1)]
    image = evaluate_predictions(rows, PUZZLES, samples=2, n_resamples=200).group("m", "image", "original")
    assert [run.rates()["error_rate"] for run in image.formats] == [0.0, 1.0]
    assert "answer_tag_rate" not in image.diagnostics()  # no response at all in run 1
    assert image.diagnostics()["error_rate"].mean == pytest.approx(50.0)


def test_an_error_is_never_an_answer() -> None:
    rows = [_row("a", "text", 0, "<answer>1 2</answer>", error="connection reset"),
            _row("b", "text", 0, "<answer>3 4 5</answer>")]
    text = evaluate_predictions(rows, PUZZLES, n_resamples=200).group("m", "text", "original")
    assert text.runs[0].macro == 0.5 and text.formats[0].n_failed == 1
    assert text.formats[0].lenient_macro == 0.5


def test_answer_rule_after_thinking_is_an_option_and_is_recorded() -> None:
    cut_off = [_row("a", "text", 0, "<think>draft <answer>1 2</answer> then check row 3"),
               _row("b", "text", 0, "<answer>3 4 5</answer>")]
    release = evaluate_predictions(cut_off, PUZZLES, n_resamples=200)
    thinking = evaluate_predictions(cut_off, PUZZLES, answer_rule="after_thinking", n_resamples=200)
    assert release.group("m", "text", "original").runs[0].macro == 1.0  # the release scores the draft
    assert thinking.group("m", "text", "original").runs[0].macro == 0.5
    assert thinking.group("m", "text", "original").formats[0].n_tagged == 1
    assert (release.answer_rule, thinking.answer_rule) == ("release", "after_thinking")
    assert thinking.to_dict()["answer_rule"] == "after_thinking"
    with pytest.raises(ValueError, match="unknown answer rule 'last'.*release, after_thinking"):
        evaluate_predictions(cut_off, PUZZLES, answer_rule="last")


def test_rows_that_cannot_be_read_are_named() -> None:
    pred_only = [{"puzzle_id": "a", "model": "m", "modality": "text", "style": "original", "sample": 0,
                  "pred": ["1", "2"]}]
    assert evaluate_predictions(pred_only, PUZZLES, n_resamples=200).group("m", "text", "original").runs[0].macro == 0.5
    with pytest.raises(ValueError, match=r"prediction row 0 \(puzzle_id='a'\).*only pred"):
        evaluate_predictions(pred_only, PUZZLES, answer_rule="after_thinking")
    with pytest.raises(ValueError, match=r"prediction row 0 .*output must be text"):
        evaluate_predictions([_row("a", "text", 0, ["1", "2"])], PUZZLES)
    with pytest.raises(ValueError, match="missing field.*output or pred"):
        evaluate_predictions([{k: v for k, v in pred_only[0].items() if k != "pred"}], PUZZLES)
