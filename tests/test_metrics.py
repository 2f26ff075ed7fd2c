"""Accuracy as the release defines it, the pipeline-facing evaluation, and paired gap statistics."""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from crossmath.metrics import (
    Evaluation,
    GroupMetrics,
    MeanStd,
    evaluate_predictions,
    paired_gap,
    run_accuracy,
    score_answer,
)

# MLflow's rule for metric names (alphanumerics, _ - . space : /).
MLFLOW_METRIC_NAME = re.compile(r"^[\w\-. :/]+$")


# ---------------------------------------------------------------- one answer, one run


def test_score_answer_by_hand() -> None:
    gold, steps = ["6", "93", "45", "8"], [1, 2, 5, 1]
    exact = score_answer(["6", "93", "45", "8"], gold, steps)
    assert (exact.exact, exact.n_correct, exact.micro, exact.answered) == (True, 4, 1.0, True)
    short = score_answer(["6", "93"], gold, steps)
    assert (short.exact, short.n_correct) == (False, 2)
    assert short.step_correct == {"step1": 1, "step2": 1, "step4+": 0}
    assert short.step_total == {"step1": 2, "step2": 1, "step4+": 1}
    long = score_answer(["6", "93", "45", "8", "1"], gold, steps)
    assert (long.exact, long.n_correct) == (False, 4)  # extra tokens spoil macro only
    shifted = score_answer(["93", "45", "8"], gold, steps)
    assert shifted.n_correct == 0  # positions, not membership
    missing = score_answer(None, gold, steps)
    assert (missing.exact, missing.n_correct, missing.answered) == (False, 0, False)
    assert score_answer([], gold, steps).answered is False
    assert score_answer(["06", "93", "45", "8"], gold, steps).n_correct == 3  # strings


def test_score_answer_rejects_inconsistent_gold() -> None:
    with pytest.raises(ValueError, match="step labels"):
        score_answer(["1"], ["1", "2"], [1])
    with pytest.raises(ValueError, match="at least one"):
        score_answer(["1"], [], [])


def test_run_accuracy_pools_step_blanks_over_puzzles() -> None:
    # Puzzle A: 1 of 1 step2 blank right. Puzzle B: 0 of 3 step2 blanks right.
    # Pooled over blanks: 1/4; a per-puzzle average would say (1 + 0) / 2.
    a = score_answer(["1", "2"], ["1", "2"], [1, 2])
    b = score_answer(["9", "9", "9", "9"], ["1", "2", "3", "4"], [1, 2, 2, 2])
    run = run_accuracy([a, b])
    assert run.step_rate("step2") == pytest.approx(0.25)
    assert run.step_rate("step1") == pytest.approx(0.5)
    assert run.step_rate("step3") is None  # no such blank: undefined, not 0
    assert run.macro == pytest.approx(0.5)
    assert run.micro == pytest.approx((1.0 + 0.0) / 2)


def test_mean_std_is_percent_with_sample_std() -> None:
    stat = MeanStd.of([0.5, 0.25, 0.75])
    assert stat.mean == pytest.approx(50.0)
    assert stat.std == pytest.approx(statistics.stdev([50.0, 25.0, 75.0]))
    assert MeanStd.of([0.3]) == MeanStd(pytest.approx(30.0), 0.0)
    assert math.isnan(MeanStd.of([]).mean)


# ---------------------------------------------------------------- evaluation of a prediction table


def _toy() -> tuple[list[dict], list[dict]]:
    """Two easy and one hard puzzle; text and image (two styles), two samples. Checked by hand."""
    puzzles = [
        {"puzzle_id": "a", "answer": ["1", "2"], "steps": [1, 1], "difficulty": "easy"},
        {"puzzle_id": "b", "answer": ["3", "4"], "steps": [1, 1], "difficulty": "easy"},
        {"puzzle_id": "c", "answer": ["5", "6", "7", "8"], "steps": [1, 2, 3, 4], "difficulty": "hard"},
    ]
    preds = []

    def add(pid, modality, style, sample, pred):
        preds.append({"puzzle_id": pid, "model": "m", "modality": modality, "style": style,
                      "sample": sample, "pred": pred})

    # text: sample 0 all right; sample 1: a right, b no answer, c half right.
    for pid, gold in (("a", ["1", "2"]), ("b", ["3", "4"]), ("c", ["5", "6", "7", "8"])):
        add(pid, "text", "original", 0, gold)
    add("a", "text", "original", 1, ["1", "2"])
    add("b", "text", "original", 1, None)
    add("c", "text", "original", 1, ["5", "6", "0", "0"])
    # image/original: only puzzle a, sample 0, right (everything else missing = wrong).
    add("a", "image", "original", 0, ["1", "2"])
    # image/beige: every puzzle gets "1 2" in both samples.
    for pid in "abc":
        for sample in (0, 1):
            add(pid, "image", "beige", sample, ["1", "2"])
    return preds, puzzles


def test_group_metrics_by_hand() -> None:
    preds, puzzles = _toy()
    ev = evaluate_predictions(preds, puzzles, seed=0, n_resamples=500)
    text = ev.group("m", "text", "original")
    assert [run.macro for run in text.runs] == pytest.approx([1.0, 1 / 3])
    assert text.macro.mean == pytest.approx(200 / 3)
    assert text.macro.std == pytest.approx(statistics.stdev([100.0, 100 / 3]))
    assert [run.micro for run in text.runs] == pytest.approx([1.0, (1 + 0 + 0.5) / 3])
    assert [run.answer_rate for run in text.runs] == pytest.approx([1.0, 2 / 3])
    # sample 1 step1 blanks: a:2 right, b:0 of 2, c:1 of 1 -> 3 of 5
    assert [run.step_rate("step1") for run in text.runs] == pytest.approx([1.0, 3 / 5])
    assert text.step("step4+").mean == pytest.approx(50.0)
    easy = ev.group("m", "text", "original", "easy")
    assert easy.n_puzzles == 2 and easy.step("step2") is None
    assert [run.macro for run in easy.runs] == pytest.approx([1.0, 0.5])

    image_original = ev.group("m", "image", "original")
    assert [run.macro for run in image_original.runs] == pytest.approx([1 / 3, 0.0])
    image_all = ev.group("m", "image", "all")  # 3 puzzles x 2 styles pooled per sample
    assert image_all.n_puzzles == 3 and image_all.n_styles == 2
    assert [run.n_items for run in image_all.runs] == [6, 6]
    assert [run.macro for run in image_all.runs] == pytest.approx([2 / 6, 1 / 6])


def test_flat_metric_names_show_modality_style_difficulty() -> None:
    preds, puzzles = _toy()
    flat = evaluate_predictions(preds, puzzles, seed=0, n_resamples=500).flat_metrics()
    assert flat["text/original/macro_acc"] == pytest.approx(200 / 3)
    assert flat["text/original/easy/micro_acc"] == pytest.approx((100 + 50) / 2)
    assert "text/original/easy/step2_acc" not in flat  # easy puzzles have no step2 blank
    assert flat["text/original/hard/step4plus_acc"] == pytest.approx(50.0)
    assert flat["image/all/macro_acc"] == pytest.approx(25.0)
    # T-I pooled: per puzzle, text mean over samples minus image mean over styles and samples.
    text = np.array([100.0, 50.0, 50.0])
    image = np.array([(100 + 0 + 100 + 100) / 4, 0.0, 0.0])
    assert flat["gap/T-I/macro_acc"] == pytest.approx((text - image).mean())
    assert flat["gap/T-I/beige/macro_acc"] == pytest.approx((text - np.array([100.0, 0, 0])).mean())
    assert "gap/T-TI/macro_acc" not in flat  # no hybrid predictions, no T-TI gap
    for name in ("_ci_low", "_ci_high", "_p_value"):
        assert f"gap/T-I/micro_acc{name}" in flat
    assert all(MLFLOW_METRIC_NAME.match(name) for name in flat), [n for n in flat if not MLFLOW_METRIC_NAME.match(n)]


def test_joins_on_puzzle_id_not_row_order_and_accepts_arrow_tables() -> None:
    preds, puzzles = _toy()
    reference = evaluate_predictions(preds, puzzles, seed=3, n_resamples=500).flat_metrics()
    shuffled_preds, shuffled_puzzles = preds[:], puzzles[:]
    random.Random(1).shuffle(shuffled_preds)
    shuffled_puzzles.reverse()
    assert evaluate_predictions(shuffled_preds, shuffled_puzzles, seed=3, n_resamples=500).flat_metrics() == reference
    tables = pa.Table.from_pylist(shuffled_preds), pa.Table.from_pylist(shuffled_puzzles)
    assert evaluate_predictions(*tables, seed=3, n_resamples=500).flat_metrics() == reference


def test_missing_predictions_count_as_wrong() -> None:
    preds, puzzles = _toy()
    full = evaluate_predictions(preds, puzzles, samples=2, n_resamples=200)
    without_a = [p for p in preds if not (p["puzzle_id"] == "a" and p["modality"] == "text")]
    dropped = evaluate_predictions(without_a, puzzles, samples=2, n_resamples=200)
    assert dropped.group("m", "text", "original").n_puzzles == 3
    assert dropped.group("m", "text", "original").macro.mean == pytest.approx(
        full.group("m", "text", "original").macro.mean - 100 / 3)
    # Asking for more samples than were run: the absent sample index scores zero.
    three = evaluate_predictions(preds, puzzles, samples=3, n_resamples=200)
    assert [run.macro for run in three.group("m", "text", "original").runs][2] == 0.0


def test_text_in_one_style_pairs_with_every_image_style() -> None:
    preds, puzzles = _toy()
    ev = evaluate_predictions(preds, puzzles, n_resamples=200)
    assert {g.style for g in ev.gaps if g.name == "T-I"} == {"original", "beige", "all"}


def test_bad_rows_are_named() -> None:
    preds, puzzles = _toy()
    with pytest.raises(ValueError, match=r"prediction row 0 \(puzzle_id='zz'\).*no gold puzzle"):
        evaluate_predictions([{**preds[0], "puzzle_id": "zz"}], puzzles)
    with pytest.raises(ValueError, match="second prediction"):
        evaluate_predictions([preds[0], preds[0]], puzzles)
    with pytest.raises(ValueError, match="pred must be a list"):
        evaluate_predictions([{**preds[0], "pred": "1 2"}], puzzles)
    with pytest.raises(ValueError, match="missing field.*sample"):
        evaluate_predictions([{k: v for k, v in preds[0].items() if k != "sample"}], puzzles)
    with pytest.raises(ValueError, match="sample 2 outside"):
        evaluate_predictions([{**preds[0], "sample": 2}], puzzles, samples=2)
    with pytest.raises(ValueError, match="reserved"):
        evaluate_predictions([{**preds[0], "style": "all"}], puzzles)
    with pytest.raises(ValueError, match="listed twice with different gold"):
        evaluate_predictions(preds, puzzles + [{**puzzles[0], "answer": ["9", "9"]}])
    with pytest.raises(ValueError, match="steps for"):
        evaluate_predictions(preds, [{**puzzles[0], "steps": [1]}])


def test_evaluation_round_trips_through_json() -> None:
    preds, puzzles = _toy()
    ev = evaluate_predictions(preds, puzzles, n_resamples=300)
    again = Evaluation.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert again.flat_metrics() == ev.flat_metrics()
    assert again.to_dict() == ev.to_dict()


def test_metrics_json_of_earlier_versions_still_loads() -> None:
    """Files saved before diagnostics: no formats, no answer rule, no style count, n_puzzles per run."""
    preds, puzzles = _toy()
    current = evaluate_predictions(preds, puzzles, n_resamples=300)
    legacy = json.loads(json.dumps(current.to_dict()))
    del legacy["answer_rule"]
    for group in legacy["groups"]:
        for key in ("n_styles", "formats", "diagnostics"):
            del group[key]
        group["n_puzzles"] = group["runs"][0]["n_items"]  # what was saved: pairs, for style all
        for run in group["runs"]:
            run["n_puzzles"] = run.pop("n_items")
    old = Evaluation.from_dict(legacy)
    assert old.answer_rule == "after_thinking"  # what the earlier extraction did
    assert old.group("m", "image", "all").n_puzzles == 3
    assert old.group("m", "image", "all").diagnostics() == {}
    flat = current.flat_metrics()
    assert old.flat_metrics() == {k: v for k, v in flat.items() if k in old.flat_metrics()}
    assert "image/all/macro_acc" in old.flat_metrics() and "image/all/error_rate" in flat
    with pytest.raises(ValueError, match="without n_styles: read it through Evaluation.from_dict"):
        GroupMetrics.from_dict(legacy["groups"][0])


def test_several_models_need_a_name_for_flat_metrics() -> None:
    preds, puzzles = _toy()
    other = [{**p, "model": "n"} for p in preds]
    ev = evaluate_predictions(preds + other, puzzles, n_resamples=200)
    with pytest.raises(ValueError, match="name a model"):
        ev.flat_metrics()
    assert ev.flat_metrics("n") == ev.flat_metrics("m")


@pytest.mark.slow
def test_metrics_import_neither_ray_torch_nor_mlflow() -> None:
    code = ("import sys, crossmath.metrics, crossmath.metrics.release_logs; "
            "print([m for m in ('ray', 'torch', 'mlflow', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- paired gaps


def test_large_gap_is_found_with_an_interval_excluding_zero() -> None:
    rng = np.random.default_rng(0)
    n = 250
    text = 100.0 * (rng.random(n) < 0.9)
    image = 100.0 * (rng.random(n) < 0.2)
    estimate = paired_gap(text, image, seed=1)
    assert estimate.ci_low < 70.0 < estimate.ci_high  # the true gap, 90% - 20%
    assert estimate.ci_low > 0.0
    assert estimate.p_value < 0.001
    assert estimate.gap == pytest.approx((text - image).mean())


def test_no_gap_gives_a_large_p_value() -> None:
    scores = np.array([100.0, 0.0, 50.0, 100.0, 0.0, 25.0] * 10)
    swapped = np.roll(scores, 1)  # same scores, shuffled between puzzles: mean difference 0
    estimate = paired_gap(scores, swapped, seed=2)
    assert estimate.gap == pytest.approx(0.0)
    assert estimate.p_value > 0.5
    assert estimate.ci_low < 0.0 < estimate.ci_high


def test_false_alarms_are_rare_under_no_gap() -> None:
    rng = np.random.default_rng(4)
    p_values = []
    for trial in range(200):
        first, second = rng.random(40) < 0.5, rng.random(40) < 0.5
        p_values.append(paired_gap(100.0 * first, 100.0 * second, seed=trial, n_resamples=999).p_value)
    assert np.mean(np.array(p_values) < 0.05) < 0.1
    assert np.mean(np.array(p_values) > 0.5) > 0.3


def test_interval_covers_the_true_gap_most_of_the_time() -> None:
    rng = np.random.default_rng(6)
    covered = 0
    for trial in range(100):
        first, second = rng.random(60) < 0.6, rng.random(60) < 0.4
        e = paired_gap(100.0 * first, 100.0 * second, seed=trial, n_resamples=999)
        covered += e.ci_low <= 20.0 <= e.ci_high
    assert covered >= 85


def test_exact_sign_flip_p_value_for_few_puzzles() -> None:
    # 8 sign patterns of (1, 2, 3); only all-plus and all-minus reach |mean| = 2.
    assert paired_gap(np.array([1.0, 2.0, 3.0]), np.zeros(3)).p_value == pytest.approx(2 / 8)
    assert paired_gap(np.array([1.0, 1.0]), np.array([1.0, 1.0])).p_value == 1.0


def test_gap_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(8)
    first, second = rng.random(100), rng.random(100)
    assert paired_gap(first, second, seed=5) == paired_gap(first, second, seed=5)
    with pytest.raises(ValueError, match="equal 1-d shapes"):
        paired_gap(first, second[:-1])
