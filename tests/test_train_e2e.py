"""The fine-tuning bars end to end on CPU: the real CLI on Ray Train with two workers.

One scenario, because each Ray Train start costs tens of seconds here: ``python -m
crossmath.train model=tiny-random`` (its shipped CPU sizes) is killed with SIGKILL once a
checkpoint is committed, the same config is run again and must continue from that checkpoint,
the loss must fall below 70% of its first value, and the main job must load the adapter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

from crossmath.models.tiny import build_tiny_random

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_TIMEOUT_S = 300


def _latest_checkpoint_step(snapshot: Path) -> int | None:
    """The step of the latest checkpoint Ray Train has committed, from its run snapshot."""
    try:
        state = json.loads(snapshot.read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or mid-write
        return None
    latest = state.get("latest_checkpoint_result")
    return int(latest["metrics"]["step"]) if latest else None


def _kill_session(process: subprocess.Popen) -> None:
    """SIGKILL the run's process group, then any Ray process it left in its session."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while True:
        listed = subprocess.run(["ps", "-o", "pid=", "-s", str(process.pid)], capture_output=True,
                                text=True).stdout.split()
        if not listed:
            return
        if time.monotonic() > deadline:  # Ray workers normally exit by themselves once orphaned
            for pid in listed:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.5)


def test_training_resumes_after_a_kill_learns_and_the_main_job_loads_the_adapter(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, ray_local, run_config) -> None:
    models = tmp_path_factory.getbasetemp() / "models"
    build_tiny_random(models)
    out = tmp_path / "train"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["model=tiny-random", f"model.model.cache_dir={models}", f"out_dir={out}",
                 f"mlflow.tracking_uri={tracking_uri}"]

    # 1. the CLI, killed once a checkpoint is committed
    log_path = tmp_path / "killed-run.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "crossmath.train", *overrides],
                                   cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    snapshot = out / "ray" / "lora" / "checkpoint_manager_snapshot.json"
    deadline = time.monotonic() + CHECKPOINT_TIMEOUT_S
    try:
        while _latest_checkpoint_step(snapshot) is None:
            assert process.poll() is None, f"training exited early:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.2)
    finally:
        _kill_session(process)
    killed_at = _latest_checkpoint_step(snapshot)
    assert not (out / "adapter").exists(), "the killed run must not have finished"

    # 2. the same config again: it continues from that checkpoint to the end
    from crossmath.finetuning.job import train

    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    outcome = train(cfg)
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
    losses = {m.step: m.value for m in client.get_metric_history(outcome.run_id, "train/loss")}
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
