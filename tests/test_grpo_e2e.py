"""The GRPO bars end to end on CPU: the real CLI on Ray Train with two workers.

``python -m crossmath.train model=tiny-random method=grpo`` (the shipped CPU preset, 8 steps) is
killed with SIGKILL once a checkpoint is committed and MLflow holds a step after it, with steps
left to run; the same config run again must continue from that checkpoint's step to the end,
log each step once to the same MLflow run, and save an adapter that the main job loads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

from crossmath.models.tiny import build_tiny_random
from tests.support import evaluate_tiny_adapter, train_until_first_checkpoint

GRPO_METRICS = {"grpo/reward_mean", "grpo/reward_std", "grpo/zero_variance_groups",
                "grpo/answer_tag_rate", "grpo/completion_tokens", "grpo/truncated_rate",
                "grpo/clip_fraction", "train/step_time_s", "rollout/tokens_per_s", "train/lr"}


@pytest.mark.slow
def test_grpo_resumes_after_a_kill_logs_its_metrics_and_the_main_job_loads_the_adapter(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, ray_local, run_config) -> None:
    models = tmp_path_factory.getbasetemp() / "models"
    build_tiny_random(models)
    out = tmp_path / "grpo"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["model=tiny-random", "method=grpo", f"model.model.cache_dir={models}",
                 f"out_dir={out}", f"mlflow.tracking_uri={tracking_uri}", "grpo.steps=8"]

    # 1. the CLI, killed once a checkpoint is committed
    killed_at = train_until_first_checkpoint(
        overrides, tmp_path, out / "ray" / "grpo" / "checkpoint_manager_snapshot.json",
        logged_past=(tracking_uri, out, "grpo/reward_mean"), total_steps=8)
    assert not (out / "adapter").exists(), "the killed run must not have finished"

    # 2. the same config again: it continues from that checkpoint to the end
    from crossmath.finetuning.job import train

    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    outcome = train(cfg)
    summary = outcome.summary
    assert summary["method"] == "grpo"
    assert summary["resumed_from_step"] == killed_at >= cfg.train.checkpoint_every
    assert summary["final_step"] == summary["total_steps"] == cfg.grpo.steps > killed_at
    assert (outcome.adapter / "adapter_config.json").is_file()

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(cfg.mlflow.experiment).experiment_id])
    assert [r.info.run_id for r in runs] == [outcome.run_id]  # one run across the kill
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["method"] == "grpo"
    assert GRPO_METRICS <= set(run.data.metrics) and "grpo/kl" not in run.data.metrics  # beta 0
    history = client.get_metric_history(outcome.run_id, "grpo/reward_mean")
    # each step once, the ones re-run after the resume included (they were logged before the kill)
    assert sorted(m.step for m in history) == list(range(1, cfg.grpo.steps + 1))
    # the tiny model's 16 noise tokens never hold a right answer: every group is all zeros
    assert run.data.metrics["grpo/reward_mean"] == 0.0
    assert run.data.metrics["grpo/zero_variance_groups"] == 1.0
    assert 0.0 < run.data.metrics["grpo/truncated_rate"] <= 1.0
    assert run.data.metrics["rollout/tokens_per_s"] > 0
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in artifacts

    # 3. the main job evaluates the GRPO adapter like an SFT one
    predictions = evaluate_tiny_adapter(run_config, models, outcome.adapter, "tiny-random-grpo")
    assert len(predictions) == 2 and not any(p["error"] for p in predictions)
