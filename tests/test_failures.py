"""Failed requests: saved with their attempt, retried up to max_attempts, counted per group;
and the results folder that holds one evaluation only. No Ray here."""

from __future__ import annotations

import pytest

from crossmath.models.base import TEXT_STYLE
from crossmath.pipeline.failures import count_failures
from crossmath.pipeline.results_folder import (
    MANIFEST_FILE,
    Manifest,
    ResultsFolderError,
    claim_results_folder,
    record_mlflow_run,
)
from crossmath.pipeline.shards import PredictionStore, SavedAttempt
from crossmath.pipeline.units import pending_units
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.settings.checks import resolved_styles
from crossmath.tasks.crossmath.requests import RequestPlan


def _prediction(request_id: str, *, attempt: int = 1, error: str | None = None,
                modality: str = "image", style: str = "original") -> dict:
    return {"request_id": request_id, "puzzle_id": "p", "name": "", "difficulty": "easy",
            "modality": modality, "style": style, "sample": 0, "prompt_id": "x", "model": "m",
            "output": "" if error else "<answer>1</answer>", "pred": None if error else ["1"],
            "n_prompt_tokens": 0, "n_output_tokens": 0, "latency_s": 0.0, "error": error,
            "finish_reason": None, "attempt": attempt}


def test_store_keeps_each_requests_latest_attempt(tmp_path):
    store = PredictionStore(str(tmp_path))
    store.write_shard([_prediction("r1", error="down"), _prediction("r2"),
                       _prediction("r3", error="down")])
    store.write_shard([_prediction("r1", attempt=2), _prediction("r3", attempt=2, error="still")])
    # a batch that Ray retried after its shard was saved: the same attempt twice
    store.write_shard([_prediction("r4", error="flaky")])
    store.write_shard([_prediction("r4")])
    table = store.read()
    assert table.column("request_id").to_pylist() == ["r1", "r2", "r3", "r4"]
    assert table.column("attempt").to_pylist() == [2, 1, 2, 1]
    assert table.column("error").to_pylist() == [None, None, "still", None]
    assert store.latest_attempts() == {"r1": SavedAttempt(2, False), "r2": SavedAttempt(1, False),
                                       "r3": SavedAttempt(2, True), "r4": SavedAttempt(1, False)}
    assert store.saved_request_ids() == {"r1", "r2", "r3", "r4"}
    assert not [p for p in (tmp_path / "shards").iterdir() if p.name.endswith(".tmp")]


def test_pending_requests_are_the_unanswered_and_the_failed_with_attempts_left():
    plan = RequestPlan(["image"], resolved_styles(["original"]), 3, None, "b")
    units = plan.units(generate_puzzles(1, "easy", seed=0))
    first, second, third = (r["request_id"] for r in units[0]["requests"])
    assert all(r["attempt"] == 1 for r in units[0]["requests"])
    saved = {first: SavedAttempt(1, False), second: SavedAttempt(1, True)}
    (unit,) = pending_units(units, saved, max_attempts=2)
    assert [(r["request_id"], r["attempt"]) for r in unit["requests"]] == [(second, 2), (third, 1)]
    saved.update({second: SavedAttempt(2, True), third: SavedAttempt(1, False)})
    assert pending_units(units, saved, max_attempts=2) == []  # the second used up its attempts
    with pytest.raises(ValueError, match="max_attempts"):
        pending_units(units, saved, max_attempts=0)


def test_failures_are_counted_per_modality_and_style(tmp_path):
    store = PredictionStore(str(tmp_path))
    store.write_shard([
        _prediction("a"), _prediction("b", error="OSError: broken PNG\nTraceback ..."),
        _prediction("c", error="OSError: broken PNG"), _prediction("d", style="beige"),
        _prediction("e", modality="text", style=TEXT_STYLE, attempt=3, error="timeout"),
    ])
    report = count_failures(store.read(), max_attempts=3)
    assert not report.complete and report.n_failed == 3 and report.n_requests == 5
    assert report.flat_metrics() == {"image/beige/n_failed": 0.0, "image/original/n_failed": 2.0,
                                     "text/markdown/n_failed": 1.0, "n_failed": 3.0}
    assert report.errors == (("OSError: broken PNG", 2), ("timeout", 1))
    assert report.exhausted == 1
    lines = report.summary_lines()
    assert lines[0].startswith("INCOMPLETE: 3 of 5 requests failed (image/original: 2, "
                               "text/markdown: 1)")
    assert "retry the 2 that have attempts left" in "\n".join(lines)
    assert "1 used up max_attempts" in "\n".join(lines)
    assert report.to_dict()["groups"][1] == {"modality": "image", "style": "original",
                                             "failed": 2, "requests": 3}

    clean = count_failures(PredictionStore(str(tmp_path / "clean")).read(), max_attempts=3)
    assert clean.complete and clean.summary_lines() == []


# ---------------------------------------------------------------- results folder


def _manifest(evaluation_id: str = "e1", **settings) -> Manifest:
    backend = {"name": "m", "max_new_tokens": 32, **settings}
    return Manifest(evaluation_id, "m", "generated", {"backend": backend, "data": {"id": "d"}})


def test_results_folder_holds_one_evaluation(tmp_path):
    store = PredictionStore(str(tmp_path / "out"))
    assert claim_results_folder(store, _manifest()) == _manifest()
    assert (tmp_path / "out" / MANIFEST_FILE).is_file()
    recorded = record_mlflow_run(store, _manifest(), "run-1")
    resumed = claim_results_folder(store, _manifest())
    assert resumed == recorded and resumed.mlflow_run_id == "run-1"

    with pytest.raises(ResultsFolderError) as refused:
        claim_results_folder(store, _manifest("e2", max_new_tokens=64))
    message = str(refused.value)
    assert "holds another evaluation" in message and "backend.max_new_tokens: 32 -> 64" in message
    assert str(store.root) in message


def test_results_folder_with_predictions_and_no_manifest_is_refused(tmp_path):
    store = PredictionStore(str(tmp_path))
    store.write_shard([_prediction("r1")])
    with pytest.raises(ResultsFolderError, match="no evaluation.json"):
        claim_results_folder(store, _manifest())
