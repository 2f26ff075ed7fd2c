"""The study's training set end to end: ``python -m crossmath.train model=tiny-random
dataset=crossmath-train dataset.path=<a folder in the study's layout>`` trains on Ray Train (two
workers) and the main job evaluates the adapter.

The folder is built from the shared official sample (``tests/study_fixture.py``): four of its
puzzles are declared an evaluation set, so they must be reported and left out, one record is
defective, and the seven others are trained on with the archives' own images.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

from crossmath.finetuning.dataset import open_training_set
from crossmath.models.tiny import build_tiny_random
from tests.study_fixture import write_study_folder
from tests.support import evaluate_tiny_adapter


@pytest.mark.slow
def test_training_on_the_study_set_and_evaluating_the_adapter(
        official_sample, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, ray_local,
        run_config, capsys) -> None:
    from crossmath import train

    models = tmp_path_factory.getbasetemp() / "models"
    build_tiny_random(models)
    study = write_study_folder(official_sample, tmp_path / "study")
    out = tmp_path / "train"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("train", overrides=[
            "model=tiny-random", f"model.model.cache_dir={models}", "dataset=crossmath-train",
            f"dataset.path={study.folder}", f"dataset.exclude_official={study.evaluation_jsonl}",
            f"out_dir={out}", f"mlflow.tracking_uri={tracking_uri}", "train.epochs=2"])
    train.main(cfg)
    printed = capsys.readouterr().out
    assert "(from fresh adapters)" in printed and f"adapter: {out / 'adapter'}" in printed

    manifest = (out / "data" / "manifest.json").read_text()
    assert '"overlaps": 4' in manifest and '"defective": 1' in manifest and '"kept": 7' in manifest
    names = set(open_training_set(out / "data").read(columns=["name"]).column("name").to_pylist())
    assert names == set(study.trained)
    client = MlflowClient(tracking_uri)
    (training,) = client.search_runs([client.get_experiment_by_name(cfg.mlflow.experiment).experiment_id])
    assert training.data.tags["dataset_source"] == f"crossmath-train:file://{study.folder}"
    assert len(training.data.tags["dataset_content_fingerprint"]) == 16

    predictions = evaluate_tiny_adapter(run_config, models, out / 'adapter', "tiny-random-study")
    assert len(predictions) == 2 and not any(p["error"] for p in predictions)
