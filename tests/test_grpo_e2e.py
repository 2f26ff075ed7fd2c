"""The GRPO bars end to end on CPU: the real CLI on Ray Train with two workers, learning.

The study runs GRPO from its SFT adapter, and so does this test. A short SFT in this process
(10 steps at a high learning rate, seconds) teaches the tiny random model to end its replies:
its base model draws the end token about once in a thousand, so from fresh adapters every
16-token completion runs into the cap and no reward can tell them apart. From that adapter,
``python -m crossmath.train model=tiny-random method=grpo`` with DAPO's overlong term
(``grpo.reward.overlong_buffer``, a shipped option) must raise the reward: completions that
end sooner lose less. The run is killed with SIGKILL once a checkpoint is committed and MLflow
holds a step after it, with steps left to run; the same config run again must continue from
that checkpoint to the end, log each step once to the same MLflow run, and save an adapter
that moved off its starting point and that the main job loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from safetensors.torch import load_file

from crossmath.finetuning.checkpoints import ADAPTER_DIR
from crossmath.finetuning.job import build_dataset
from crossmath.finetuning.local import LocalEnv, train_locally
from crossmath.finetuning.loop import TrainJob
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.settings.train import DatasetSettings
from tests.support import evaluate_tiny_adapter, joining, kill_after_first_checkpoint

GRPO_METRICS = {"grpo/reward_mean", "grpo/reward_std", "grpo/zero_variance_groups",
                "grpo/answer_tag_rate", "grpo/completion_tokens", "grpo/truncated_rate",
                "grpo/clip_fraction", "train/step_time_s", "rollout/tokens_per_s", "train/lr"}
STEPS = 12  # fast once learned (1-2 token replies): enough steps left after a checkpoint for the kill


def sft_warm_start(spec: ModelSpec, folder: Path) -> Path:
    """A tiny-random SFT adapter (the CLI's ``train.lora``) after 10 steps at lr 2e-2, trained
    in this process; its folder."""
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("train", overrides=[
            "model=tiny-random", f"out_dir={folder}", "dataset.n_puzzles=20", "dataset.modalities=[image]",
            "train.lr=2e-2", "train.epochs=2", "train.validation_fraction=0", "train.checkpoint_every=0"])
    settings = TrainSettings.from_mapping(OmegaConf.to_container(cfg.train, resolve=True))
    summary = train_locally(TrainJob(spec, settings, build_dataset(DatasetSettings.from_mapping(OmegaConf.to_container(cfg.dataset, resolve=True))).read), folder / "checkpoints")
    assert summary["final_step"] == 10  # 20 puzzles, batch 4 on one worker, 2 epochs
    return LocalEnv(folder / "checkpoints").checkpoints()[-1] / ADAPTER_DIR


def lora_b(adapter: Path) -> dict[str, torch.Tensor]:
    weights = load_file(adapter / "adapter_model.safetensors")
    return {name: value for name, value in weights.items() if "lora_B" in name}


@pytest.mark.slow
def test_grpo_from_an_sft_adapter_raises_its_reward_resumes_after_a_kill_and_the_main_job_loads_it(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, ray_local, run_config,
        tiny_spec) -> None:
    models = tmp_path_factory.getbasetemp() / "models"  # where tiny_model_config built the model
    init = sft_warm_start(tiny_spec, tmp_path / "sft")
    out = tmp_path / "grpo"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["model=tiny-random", "method=grpo", f"model.model.cache_dir={models}",
                 f"out_dir={out}", f"mlflow.tracking_uri={tracking_uri}", f"init_adapter={init}",
                 f"grpo.steps={STEPS}", "grpo.reward.overlong_buffer=12"]  # 16-token cap: free up to 4

    # 1. the CLI (2 workers, the tiny preset: 4 puzzles x 4 completions a step, lr 5e-3),
    #    killed once a checkpoint is committed and a later step logged
    killed_at = kill_after_first_checkpoint(
        [sys.executable, "-m", "crossmath.train", *overrides, joining(ray_local)], tmp_path,
        out / "ray" / "grpo" / "checkpoint_manager_snapshot.json",
        logged_past=(tracking_uri, out, "grpo/reward_mean"), total_steps=STEPS, joined=ray_local)
    assert not (out / "adapter").exists(), "the killed run must not have finished"

    # 2. the same config again: it continues from that checkpoint to the end
    from crossmath.finetuning.job import train
    from crossmath.settings.train import TrainJobSettings

    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    assert cfg.scaling.num_workers == 2
    outcome = train(TrainJobSettings.from_config(cfg))
    summary = outcome.summary
    assert summary["method"] == "grpo" and summary["init_adapter"] == str(init)
    assert summary["resumed_from_step"] == killed_at >= cfg.train.checkpoint_every
    assert summary["final_step"] == summary["total_steps"] == STEPS > killed_at

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(cfg.mlflow.experiment).experiment_id])
    assert [r.info.run_id for r in runs] == [outcome.run_id]  # one run across the kill
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["method"] == "grpo"
    assert GRPO_METRICS <= set(run.data.metrics) and "grpo/kl" not in run.data.metrics  # beta 0
    assert run.data.metrics["rollout/tokens_per_s"] > 0
    history = client.get_metric_history(outcome.run_id, "grpo/reward_mean")
    # each step once, the ones re-run after the resume included (they were logged before the kill)
    assert sorted(m.step for m in history) == list(range(1, STEPS + 1))

    # 3. it learned: the reward of the last quarter of the steps beats the first quarter's
    rewards = {m.step: m.value for m in history}
    quarter = STEPS // 4
    first = sum(rewards[s] for s in range(1, quarter + 1)) / quarter
    last = sum(rewards[s] for s in range(STEPS - quarter + 1, STEPS + 1)) / quarter
    assert last > first + 0.2, rewards
    lengths = {m.step: m.value for m in client.get_metric_history(outcome.run_id, "grpo/completion_tokens")}
    assert lengths[STEPS] < lengths[1], lengths  # by ending sooner, as the overlong term asks
    start, trained = lora_b(init), lora_b(outcome.adapter)
    assert trained.keys() == start.keys() and trained
    assert all(value.abs().max() > 0 for value in trained.values())
    assert max(float((trained[k] - start[k]).abs().max()) for k in start) > 1e-3  # it moved
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in artifacts

    # 4. the main job evaluates the GRPO adapter like an SFT one
    predictions = evaluate_tiny_adapter(run_config, models, outcome.adapter, "tiny-random-grpo")
    assert len(predictions) == 2 and not any(p["error"] for p in predictions)
