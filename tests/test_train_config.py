"""The shipped training configs compose and validate; the train-then-evaluate job's plan."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from crossmath.finetuning.dataset import TrainingSetSpec
from crossmath.finetuning.modeling import ModelSpec
from crossmath.finetuning.train_settings import TrainSettings

REPO = Path(__file__).resolve().parents[1]


def _compose(*overrides: str):
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _validated(cfg) -> tuple[TrainSettings, TrainingSetSpec]:
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    for key in ("build_dir", "path", "cache_dir", "exclude_generated", "exclude_official"):
        dataset.pop(key)
    return (TrainSettings.from_mapping(OmegaConf.to_container(cfg.train, resolve=True)),
            TrainingSetSpec.from_mapping(dataset))


def test_the_default_config_is_the_study_setup() -> None:
    cfg = _compose("model=openai")  # a model without a preset: the shipped defaults as they are
    settings, spec = _validated(cfg)
    assert settings.lora.rank == 16 and settings.lora.vision_tower == "frozen"
    assert settings.lora.extra_target_modules == ()
    assert spec.n_puzzles == 5000 and spec.styles == ("original", "noborder")
    assert spec.modalities == ("image", "hybrid", "text") and spec.target == "rationale"
    assert cfg.dataset.exclude_generated[0].seed == 0 != spec.seed
    with pytest.raises(ValueError, match="needs a local transformers model"):
        ModelSpec.from_backend_config(OmegaConf.to_container(cfg.model, resolve=True))


def test_the_tiny_model_gets_its_cpu_preset_and_the_command_line_still_wins() -> None:
    cfg = _compose("model=tiny-random")
    settings, spec = _validated(cfg)
    assert spec.n_puzzles == 40 and spec.target == "answer"
    assert settings.lora.extra_target_modules == ("lm_head",) and settings.loader_threads == 0
    assert cfg.out_dir == "runs/train/tiny-random" and cfg.dataset.build_dir == "runs/train/tiny-random/data"
    assert _compose("model=tiny-random", "dataset.n_puzzles=7", "train.lr=0.1").dataset.n_puzzles == 7
    assert _compose("model=tiny-random", "train.lr=0.1").train.lr == 0.1


def _job_module():
    spec = importlib.util.spec_from_file_location("train_then_eval", REPO / "jobs" / "train_then_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_then_eval_evaluates_the_adapter_it_trained(tmp_path: Path) -> None:
    job = _job_module()
    args = job.parse_args(["--model", "tiny-random", "--baseline", "--out", str(tmp_path),
                           "--train", "train.epochs=1", "--eval", "data.n=4"])
    steps = dict(job.plan(args))
    assert list(steps) == ["evaluate the untuned model", "train", "evaluate the tuned model"]
    train, tuned, base = steps["train"], steps["evaluate the tuned model"], steps["evaluate the untuned model"]
    assert train[2:] == ["crossmath.train", "model=tiny-random", f"out_dir={tmp_path / 'train'}",
                         "train.epochs=1"]
    assert f"model.adapter={tmp_path / 'train' / 'adapter'}" in tuned
    assert "model.name=tiny-random-lora" in tuned and "data.n=4" in tuned and "data.n=4" in base
    roots = [a for a in tuned + base if a.startswith("runs_dir=")]
    assert len(set(roots)) == 2  # the two evaluations never share a prediction store
    assert not [a for a in tuned + base if a.startswith("out_dir=")]  # a folder per evaluation
    assert list(dict(job.plan(job.parse_args(["--model", "m"])))) == ["train", "evaluate the tuned model"]


def test_train_then_eval_stops_at_the_first_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    job = _job_module()
    ran: list[list[str]] = []

    def fake_run(command, env):
        ran.append(command)
        return type("Done", (), {"returncode": 7 if "crossmath.train" in command else 0})()

    monkeypatch.setattr(job.subprocess, "run", fake_run)
    assert job.main(["--baseline", "--out", str(tmp_path)]) == 7
    assert [c[2] for c in ran] == ["crossmath.run", "crossmath.train"]  # no evaluation of a missing adapter
