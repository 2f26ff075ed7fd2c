"""The fine-tuning bars end to end on CPU: the real CLI on Ray Train with two workers.

One scenario, because each Ray Train start costs tens of seconds here: ``python -m
crossmath.train model=tiny-random`` (its shipped CPU sizes) is killed with SIGKILL once a
checkpoint is committed, the same config is run again and must continue from that checkpoint,
the loss must fall below 70% of its first value, and the main job must load the adapter.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

from crossmath.models.tiny import build_tiny_random
from tests.support import train_until_first_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_training_resumes_after_a_kill_learns_and_the_main_job_loads_the_adapter(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, ray_local, run_config) -> None:
    models = tmp_path_factory.getbasetemp() / "models"
    build_tiny_random(models)
    out = tmp_path / "train"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["model=tiny-random", f"model.model.cache_dir={models}", f"out_dir={out}",
                 f"mlflow.tracking_uri={tracking_uri}"]

    # 1. the CLI, killed once a checkpoint is committed
    killed_at = train_until_first_checkpoint(
        overrides, tmp_path, out / "ray" / "lora" / "checkpoint_manager_snapshot.json",
        logged_past=(tracking_uri, out, "train/loss"), joined=ray_local)
    assert not (out / "adapter").exists(), "the killed run must not have finished"

    # 2. the same config again: it continues from that checkpoint to the end
    from crossmath.finetuning.job import train
    from crossmath.settings.train import TrainJobSettings

    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    outcome = train(TrainJobSettings.from_config(cfg))
    summary = outcome.summary
    assert summary["resumed_from_step"] == killed_at >= cfg.train.checkpoint_every
    assert summary["final_step"] == summary["total_steps"] > killed_at
    assert (outcome.adapter / "adapter_config.json").is_file()

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [outcome.run_id]  # one run across the kill
    assert runs[0].info.status == "FINISHED"
    assert {"train/loss", "train/lr", "train/tokens_per_s", "val/loss"} <= set(runs[0].data.metrics)
    history = client.get_metric_history(outcome.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, summary["final_step"] + 1))  # once each
    losses = {m.step: m.value for m in history}
    final_steps = range(summary["final_step"] - 2, summary["final_step"] + 1)
    assert sum(losses[s] for s in final_steps) / 3 < 0.7 * losses[1], losses
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in artifacts

    # 3. the README's flow: evaluate the base model, then the adapter with the same command
    #    plus model.adapter; the adapter's evaluation answers anew, in its own folder
    from crossmath import run
    from crossmath.pipeline.evaluation import run_evaluation

    runs = tmp_path / "runs"
    common = ["model=tiny-random", f"model.model.cache_dir={models}", "data.n=2",
              "modalities=[image,text]", "styles=[original]", "samples=1", "out_dir=null",
              f"runs_dir={runs}", "model.sampling=greedy"]  # tiny-random samples at temperature 1
    base = run_evaluation(run_config(*common))
    assert base.n_run_now == 4
    run.main(run_config(*common, f"model.adapter={outcome.adapter}"))
    (tuned_dir,) = [folder for folder in base.out_dir.parent.iterdir() if folder != base.out_dir]
    outputs = pq.read_table(tuned_dir / "predictions.parquet").column("output").to_pylist()
    assert len(outputs) == 4
    assert all(output.startswith("<answer>") for output in outputs), outputs
    assert sum(pq.read_metadata(p).num_rows for p in (tuned_dir / "shards").glob("*.parquet")) == 4
    base_outputs = base.predictions.column("output").to_pylist()
    assert not any(output.startswith("<answer>") for output in base_outputs), base_outputs
