"""An evaluation logged to a real MLflow server, checked through the server's REST API: what the
UI shows is what these calls return (experiment kind and view, dataset input, run name,
headline metrics, the browsable table and its images)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import requests

from crossmath.pipeline.evaluation import run_evaluation
from crossmath.tasks.crossmath.sources import generated_puzzles
from crossmath.tracking import local_server
from crossmath.tracking.run_labels import NAME_LIMIT
from crossmath.tracking.ui_view import VIEW_TAG


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a free local port, SQLite store and served artifacts in tmp_path."""
    with local_server.mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path,
                                    artifacts_destination=tmp_path / "artifacts") as url:
        yield url


def _api(url: str, endpoint: str, **params):
    response = requests.get(f"{url}/api/2.0/mlflow/{endpoint}", params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def _artifact(url: str, run_id: str, path: str) -> bytes:
    response = requests.get(f"{url}/get-artifact", params={"path": path, "run_uuid": run_id},
                            timeout=30)
    response.raise_for_status()
    return response.content


@pytest.mark.slow
def test_the_server_shows_kind_dataset_name_headline_and_table(ray_local, run_config,
                                                               mlflow_server, monkeypatch):
    cfg = run_config("model=oracle", "data.n=2", "samples=1", "styles=[original]",
                     f"mlflow.tracking_uri={mlflow_server}")
    outcome = run_evaluation(cfg)
    n_predictions = 2 * (1 + 2)  # text once, image and hybrid in one style

    experiment = _api(mlflow_server, "experiments/get-by-name",
                      experiment_name="crossmath")["experiment"]
    tags = {tag["key"]: tag["value"] for tag in experiment["tags"]}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert "metrics.`acc/gap_T-I`" in json.loads(tags[VIEW_TAG])["selectedColumns"]

    response = requests.post(f"{mlflow_server}/api/2.0/mlflow/runs/search", timeout=30,
                             json={"experiment_ids": [experiment["experiment_id"]]})
    (run,) = response.json()["runs"]
    info, data = run["info"], run["data"]
    prefix, _, short_id = info["run_name"].rpartition("/")
    assert prefix == "oracle/gen-mixed-n2-s0/T,I,TI" and len(prefix) <= NAME_LIMIT
    assert outcome.evaluation_id.startswith(short_id) and info["run_id"] == outcome.mlflow_run_id

    (dataset_input,) = run["inputs"]["dataset_inputs"]
    assert dataset_input["dataset"]["digest"] == generated_puzzles(2, "mixed", 0).fingerprint
    assert dataset_input["dataset"]["name"] == "generated-mixed-n2-seed0"
    assert dataset_input["tags"] == [{"key": "mlflow.data.context", "value": "evaluation"}]

    metrics = {metric["key"]: metric["value"] for metric in data["metrics"]}
    assert {name: metrics[name] for name in metrics if name.startswith("acc/")} == {
        "acc/text": 100.0, "acc/image": 0.0, "acc/hybrid": 100.0, "acc/gap_T-I": 100.0,
        "acc/gap_T-TI": 0.0}
    assert metrics["gap/T-I/macro_acc"] == 100.0  # the details keep their names
    run_tags = {tag["key"]: tag["value"] for tag in data["tags"]}
    assert "acc/gap_T-I +100.0" in run_tags["mlflow.note.content"]
    assert run_tags["mlflow.source.type"] == "LOCAL" and run_tags["mlflow.source.name"]

    again = run_evaluation(cfg)  # resumed: nothing asked, the table logged again
    assert again.n_run_now == 0 and again.mlflow_run_id == outcome.mlflow_run_id
    table = json.loads(_artifact(mlflow_server, info["run_id"], "evaluation_table.json"))
    assert len(table["data"]) == n_predictions  # replaced, not appended to
    rows = [dict(zip(table["columns"], values)) for values in table["data"]]
    assert sorted(row["correct"] for row in rows) == [False, False, True, True, True, True]
    images = {row["image"]["filepath"] for row in rows if row["modality"] != "text"}
    assert len(images) == 2 and all(row["image"] is None for row in rows
                                    if row["modality"] == "text")
    for path in images:
        image = _artifact(mlflow_server, info["run_id"], path)
        assert image[:4] == b"RIFF" and image[8:12] == b"WEBP"
    listed = _api(mlflow_server, "artifacts/list", run_id=info["run_id"])["files"]
    assert {"evaluation_table.json", "table_images", "predictions.parquet"} <= {
        entry["path"] for entry in listed}

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "crossmath")
    loaded = mlflow.load_table("evaluation_table.json", run_ids=[info["run_id"]])
    assert len(loaded) == n_predictions and loaded["correct"].sum() == 4
    assert Path(outcome.out_dir, "predictions.parquet").is_file()
