"""Outputs in storage named by a URI, and predictions that the driver cannot see (local Ray)."""

from __future__ import annotations

import json

import mlflow
import pyarrow.parquet as pq
import pytest

from crossmath.models.base import TEXT_STYLE
from crossmath.pipeline.calls import CallCapacity, plan_calls
from crossmath.pipeline.dataflow import StageResources, attach_release_images, run_pipeline
from crossmath.pipeline.evaluation import run_evaluation as evaluate
from crossmath.pipeline.shards import PredictionStore, local_path, publish_files
from crossmath.pipeline.units import expand_unit
from crossmath.settings.checks import resolved_styles
from crossmath.tasks.crossmath.requests import RequestPlan
from crossmath.tasks.crossmath.sources import generated_puzzles, official_puzzles

ORACLE = {"_target_": "crossmath.models.baselines.OracleBackend", "name": "oracle"}


@pytest.mark.slow
def test_run_writes_every_output_through_a_file_uri(ray_local, run_config, tmp_path):
    folder = tmp_path / "shared disk" / "run"  # a space: the URI carries it as %20
    cfg = run_config("model=oracle", "data.n=2", "samples=1", "styles=[original]",
                     f"out_dir={folder.as_uri()}")
    outcome = evaluate(cfg)
    assert outcome.out_dir == folder
    assert pq.read_table(folder / "predictions.parquet").num_rows == 2 * 3
    assert json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert {"report.md", "accuracy.png", "puzzles.parquet"} <= {p.name for p in folder.iterdir()}
    assert list((folder / "shards").glob("*.parquet"))
    client = mlflow.MlflowClient(cfg.mlflow.tracking_uri)
    assert client.get_run(outcome.mlflow_run_id).data.tags["out_dir"] == folder.as_uri()
    assert {"predictions.parquet", "report.md"} <= {
        f.path for f in client.list_artifacts(outcome.mlflow_run_id)}


@pytest.mark.slow
def test_predictions_saved_where_the_driver_cannot_see_are_reported_as_a_storage_problem(
        ray_local, tmp_path):
    driver_view = PredictionStore(str(tmp_path / "driver"))
    driver_view.root = PredictionStore(str(tmp_path / "elsewhere")).root  # what the actors get
    plan = RequestPlan(["text"], {}, 1, None, "oracle")
    with pytest.raises(RuntimeError, match="every Ray node reaches"):
        run_pipeline(plan.units(generated_puzzles(2, "easy", 0).puzzles), ORACLE, driver_view,
                     StageResources(), prompt_id=plan.prompt_id)
    assert len(PredictionStore(str(tmp_path / "elsewhere")).saved_request_ids()) == 2


def test_local_locations_and_publishing(tmp_path, monkeypatch):
    assert local_path(str(tmp_path / "a")) == tmp_path / "a"
    assert local_path((tmp_path / "b c").as_uri()) == tmp_path / "b c"
    assert local_path("s3://bucket/run") is None
    source = tmp_path / "made.txt"
    source.write_text("x", encoding="utf-8")
    publish_files([source], (tmp_path / "out" / "deep").as_uri())
    assert (tmp_path / "out" / "deep" / "made.txt").read_text(encoding="utf-8") == "x"
    monkeypatch.chdir(tmp_path)
    relative = PredictionStore("relative/run")
    assert relative.root == (tmp_path / "relative" / "run").as_uri()  # workers get it absolute


def test_release_images_travel_as_bytes_from_the_driver(official_sample):
    styles = resolved_styles(["original", "handwritten"])
    puzzle_set = official_puzzles(str(official_sample), styles, limit=2)
    plan = RequestPlan(["text", "hybrid"], styles, 2, None, "oracle")
    calls = plan_calls(plan.units(puzzle_set.puzzles, puzzle_set.official_images), CallCapacity(3),
                       styles)
    attach_release_images(calls)
    rows = [row for call in calls for unit in call["units"] if unit["style"] != "handwritten"
            for row in expand_unit(unit, unit["images"])]
    released = [row for row in rows if row["style"] == "original"]
    assert len(released) == 2 * 2  # original only: 2 puzzles x 2 samples; handwritten is rendered
    for row in released:
        path = puzzle_set.official_images[(row["name"], "original")]
        assert row["images"] == [path.read_bytes()]
        assert "image_path" not in row  # nothing for a worker to open
    drawn_later = [unit["images"] for call in calls for unit in call["units"]
                   if unit["style"] == "handwritten"]
    assert drawn_later == [None] * 2  # the render stage's job


@pytest.mark.slow
def test_rendered_and_release_images_flow_through_one_run(ray_local, run_config, official_sample):
    outcome = evaluate(run_config("model=oracle", "data=official", f"data.path={official_sample}",
                                  "data.n=2", "samples=1", "modalities=[text,hybrid]",
                                  "styles=[original,handwritten]"))
    assert outcome.n_requests == 2 * (1 + 2)
    assert outcome.evaluation.group("oracle", "text", TEXT_STYLE).macro.mean == 100.0
    assert outcome.evaluation.group("oracle", "hybrid", "handwritten").macro.mean == 100.0
    assert outcome.evaluation.group("oracle", "hybrid", "original").macro.mean == 100.0
