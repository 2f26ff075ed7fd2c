"""method=grpo composes to the study's setup, checks its settings early, and chains after SFT."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from crossmath.core.errors import ConfigError
from crossmath.finetuning.grpo import GrpoJob
from crossmath.finetuning.grpo_settings import GrpoSettings
from crossmath.finetuning.job import method_job
from crossmath.finetuning.loop import TrainJob
from crossmath.finetuning.rewards import StepWeightedReward
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.orchestration.ray_jobs import chained_steps
from crossmath.orchestration.story_plan import plan_story
from crossmath.settings.train import TrainJobSettings
from crossmath.submit import tuned_story
from jobs import train_then_eval


def _compose(*overrides: str):
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _settings(cfg) -> tuple[TrainSettings, GrpoSettings]:
    return (TrainSettings.from_mapping(OmegaConf.to_container(cfg.train, resolve=True)),
            GrpoSettings.from_mapping(OmegaConf.to_container(cfg.grpo, resolve=True)))


def test_grpo_defaults_are_the_study_setup() -> None:
    cfg = _compose("model=openai", "method=grpo")  # no preset: the shipped defaults as they are
    train, grpo = _settings(cfg)
    assert (grpo.rollouts, grpo.steps, grpo.max_completion_tokens) == (4, 200, 6000)
    assert train.lr == 1e-6 and train.lora.rank == 16 and grpo.kl_beta == 0.0
    assert grpo.reward.step_weights is None and grpo.reward.format_weight == 0.0  # w = depth
    assert grpo.truncated == "zero" and grpo.ppo_epochs == 1
    assert list(cfg.dataset.modalities) == ["image"] and cfg.dataset.seed not in (0, 1000)
    assert cfg.dataset.exclude_generated[0].seed == 0  # the evaluation's puzzles stay out
    assert (cfg.out_dir, cfg.run_name, cfg.init_adapter) == (f"runs/grpo/{cfg.model.name}", "grpo", None)



def test_every_grpo_setting_is_in_the_shipped_config_with_the_code_default() -> None:
    """So each option docs/training.md lists is set as ``grpo.<key>=...`` (no ``+``), and the
    YAML and the dataclasses cannot drift apart."""
    cfg = _compose("model=openai", "method=grpo")
    assert set(cfg.grpo) == {f.name for f in dataclasses.fields(GrpoSettings)}
    assert set(cfg.grpo.reward) == {f.name for f in dataclasses.fields(StepWeightedReward)}
    assert _settings(cfg)[1] == GrpoSettings()
    changed = _compose("model=openai", "method=grpo", "grpo.kl_ref=base", "grpo.logprob_chunk=256",
                       "grpo.reward.overlong_buffer=8")
    grpo = _settings(changed)[1]
    assert (grpo.kl_ref, grpo.logprob_chunk, grpo.reward.overlong_buffer) == ("base", 256, 8)

def test_sft_stays_the_default_and_carries_no_grpo_block() -> None:
    cfg = _compose("model=openai")
    assert cfg.method == "sft" and "grpo" not in cfg and "init_adapter" not in cfg
    assert (cfg.out_dir, cfg.run_name, cfg.train.lr) == (f"runs/train/{cfg.model.name}", "lora", 2e-5)


def test_the_tiny_model_gets_its_grpo_preset_and_the_command_line_still_wins() -> None:
    cfg = _compose("model=tiny-random", "method=grpo")
    train, grpo = _settings(cfg)
    assert grpo.steps == 6 and grpo.max_completion_tokens == 16 and cfg.dataset.n_puzzles == 16
    assert train.lora.extra_target_modules == ("lm_head",) and train.lr == 5e-3
    assert _compose("model=tiny-random", "method=grpo", "grpo.steps=3").grpo.steps == 3
    assert _compose("model=tiny-random", "method=grpo", "train.lr=0.1").train.lr == 0.1
    sft = _compose("model=tiny-random")
    assert "grpo" not in sft and sft.dataset.n_puzzles == 40  # the GRPO preset stays out of SFT


def test_the_method_job_is_made_from_the_settings_the_door_checked(tmp_path: Path) -> None:
    def job(*overrides: str):
        return method_job(TrainJobSettings.from_config(_compose("model=tiny-random", *overrides)))

    sft = job()
    assert sft.func is TrainJob and sft.args[1] == TrainSettings.from_mapping(
        OmegaConf.to_container(_compose("model=tiny-random").train, resolve=True))
    grpo = job("method=grpo")
    assert grpo.func is GrpoJob and grpo.keywords["init_adapter"] is None
    assert grpo.args[2] == GrpoSettings.from_mapping(
        OmegaConf.to_container(_compose("model=tiny-random", "method=grpo").grpo, resolve=True))
    with pytest.raises(ConfigError, match="holds no adapter_config.json"):
        job("method=grpo", f"init_adapter={tmp_path}")
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    assert job("method=grpo", f"init_adapter={tmp_path}").keywords["init_adapter"] == str(tmp_path)
    with pytest.raises(ConfigError, match=r"prompts_per_step \(4\) must be a multiple .* \(3\)"):
        job("method=grpo", "scaling.num_workers=3")
    with pytest.raises(ConfigError, match="grpo.truncated must be one of"):
        job("method=grpo", "grpo.truncated=drop")


def _steps(steps) -> dict[str, tuple[str, ...]]:
    return {step.name: step.overrides for step in steps}


def test_the_chained_job_runs_sft_then_grpo_from_its_adapter_then_evaluates(tmp_path: Path) -> None:
    args = train_then_eval.parse_args(["--model", "tiny-random", "--out", str(tmp_path),
                                       "--train", "train.epochs=1", "--grpo", "grpo.steps=3",
                                       "--eval", "data.n=4"])
    steps = _steps(train_then_eval.plan(args))
    assert list(steps) == ["fine-tune (SFT)", "evaluate lora on crossmath", "fine-tune (GRPO)",
                           "evaluate grpo on crossmath"]
    grpo = steps["fine-tune (GRPO)"]
    cfg = _compose(*grpo)
    assert cfg.method == "grpo" and cfg.grpo.steps == 3
    assert cfg.init_adapter == str(tmp_path / "train" / "adapter")
    assert cfg.out_dir == str(tmp_path / "grpo") and "train.epochs=1" not in grpo
    evaluate = steps["evaluate grpo on crossmath"]
    assert f"model.adapter={tmp_path / 'grpo' / 'adapter'}" in evaluate
    assert "model.name=tiny-random-grpo" in evaluate and "data.n=4" in evaluate
    outs = {a.split("=", 1)[1] for step in steps.values() for a in step
            if a.startswith(("out_dir=", "runs_dir="))}
    assert len(outs) == 4  # no two steps share an output folder
    plain = train_then_eval.parse_args(["--model", "m", "--grpo"])
    assert list(_steps(train_then_eval.plan(plain)))[-2:] == ["fine-tune (GRPO)",
                                                             "evaluate grpo on crossmath"]


def test_the_cluster_job_passes_the_grpo_stage_with_the_training_defaults() -> None:
    args = argparse.Namespace(storage="/efs", mlflow_uri="http://mlflow:5000", gpus=1.0,
                              model="qwen2.5-vl-3b", baseline=False, workers=4,
                              train=["train.epochs=1"], eval=["data=official"],
                              grpo=["grpo.steps=50", "scaling.num_workers=2"])
    commands = [shlex.split(line) for line in chained_steps(plan_story(tuned_story(args)))
                .split(" && ")]
    assert [words[:3] for words in commands] == [["python", "-m", "crossmath.train"],
                                                 ["python", "-m", "crossmath.run"]] * 2
    train, evaluate, grpo, _ = (words[3:] for words in commands)
    assert train[-1] == "train.epochs=1" and evaluate[-1] == "data=official"
    assert "ray.address=auto" in grpo and "scaling.use_gpu=true" in grpo
    assert "scaling.num_workers=2" in grpo and "scaling.num_workers=4" not in grpo
    assert grpo[-1] == "scaling.num_workers=2"
    without = plan_story(tuned_story(argparse.Namespace(**{**vars(args), "grpo": None})))
    assert [step.module for step in without] == ["crossmath.train", "crossmath.run"]
