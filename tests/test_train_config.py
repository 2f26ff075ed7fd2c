"""The shipped training configs compose and validate; the train-then-evaluate job's plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from crossmath.finetuning.dataset import TrainingSetSpec
from crossmath.finetuning.model_spec import check_trainable
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.orchestration import local_steps
from jobs import train_then_eval


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
        check_trainable(OmegaConf.to_container(cfg.model, resolve=True))


def test_the_tiny_model_gets_its_cpu_preset_and_the_command_line_still_wins() -> None:
    cfg = _compose("model=tiny-random")
    settings, spec = _validated(cfg)
    assert spec.n_puzzles == 40 and spec.target == "answer"
    assert settings.lora.extra_target_modules == ("lm_head",) and settings.loader_threads == 0
    assert cfg.out_dir == "runs/train/tiny-random" and cfg.dataset.build_dir == "runs/train/tiny-random/data"
    assert _compose("model=tiny-random", "dataset.n_puzzles=7", "train.lr=0.1").dataset.n_puzzles == 7
    assert _compose("model=tiny-random", "train.lr=0.1").train.lr == 0.1


def _steps(*argv: str) -> dict[str, tuple[str, ...]]:
    """The train-then-evaluate job's steps: each one's name and its module and overrides."""
    return {step.name: (step.module, *step.overrides)
            for step in train_then_eval.plan(train_then_eval.parse_args(list(argv)))}


def test_train_then_eval_evaluates_the_adapter_it_trained(tmp_path: Path) -> None:
    steps = _steps("--model", "tiny-random", "--baseline", "--out", str(tmp_path),
                   "--train", "train.epochs=1", "--eval", "data.n=4")
    assert list(steps) == ["evaluate base on crossmath", "fine-tune (SFT)", "evaluate lora on crossmath"]
    train, tuned, base = (steps[name] for name in ("fine-tune (SFT)", "evaluate lora on crossmath",
                                                   "evaluate base on crossmath"))
    assert train == ("crossmath.train", "model=tiny-random", f"out_dir={tmp_path / 'train'}",
                     "train.epochs=1")
    assert f"model.adapter={tmp_path / 'train' / 'adapter'}" in tuned
    assert "model.name=tiny-random-lora" in tuned and "data.n=4" in tuned and "data.n=4" in base
    assert not any(a.startswith("modalities=") for a in tuned + base)  # no probe: the run's own
    roots = [a for a in tuned + base if a.startswith("runs_dir=")]
    assert len(set(roots)) == 2  # the two evaluations never share a prediction store
    assert not [a for a in tuned + base if a.startswith("out_dir=")]  # a folder per evaluation
    assert list(_steps("--model", "m")) == ["fine-tune (SFT)", "evaluate lora on crossmath"]


@pytest.mark.parametrize("failing, status", [("crossmath.train", 7), ("crossmath.run", 3)])
def test_train_then_eval_stops_at_the_first_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    failing: str, status: int) -> None:
    ran: list[list[str]] = []

    def fake_run(command, env):
        ran.append(command)
        return type("Done", (), {"returncode": status if failing in command else 0})()

    monkeypatch.setattr(local_steps.subprocess, "run", fake_run)
    assert train_then_eval.main(["--baseline", "--out", str(tmp_path)]) == status
    # no evaluation of a missing adapter; an incomplete evaluation stops it too
    assert [c[2] for c in ran] == ["crossmath.run", "crossmath.train"][:1 + (failing == "crossmath.train")]
