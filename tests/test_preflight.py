"""The doors of the main job and of fine-tuning: every bad option is named before work starts.

These compose the real configs (``conf/run.yaml``, ``conf/train.yaml``) with the user's
overrides and call the checks in this process; tests/test_command_errors.py runs the commands.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from crossmath.runtime.errors import ConfigError
from crossmath.settings.checks import adapter_folder, writable_folder
from crossmath.settings.run import check_run_config


def adapter(folder: Path, config: str | None = '{"peft_type": "LORA", "r": 8}',
            weights: str | None = "adapter_model.safetensors") -> Path:
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "adapter_config.json").write_text(config, encoding="utf-8")
    if weights is not None:
        (folder / weights).write_bytes(b"\0")
    return folder


def refusal(check, *args) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        check(*args)
    return caught.value


# --- the main job ---------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [
    [],
    ["data=official", "data.path={sample}"],
    ["data=official", "data.path={sample}/Original/testset_hr.jsonl", "data.n=3"],
    ["model=tiny-random", "styles=[original,{repo}/conf/style/beige.yaml]"],
    ["modalities=[text]", "styles=[]"],
])
def test_good_configs_pass(run_config, official_sample, overrides):
    repo = Path(__file__).resolve().parents[1]
    check_run_config(run_config(*[o.format(sample=official_sample, repo=repo)
                                  for o in overrides]))


@pytest.mark.parametrize("overrides, where, says", [
    (["styles=[original,nope]"], "styles[1]", "unknown style 'nope'"),
    (["styles=[]"], "styles", "need a style"),
    (["modalities=[text,txt]"], "modalities[1]", "one of text, image, hybrid"),
    (["modalities=[]"], "modalities", "is empty"),
    (["samples=0"], "samples", ">= 1"),
    (["data.n=0"], "data.n", "got 0"),
    (["data.n=-5"], "data.n", "got -5"),
    (["data.difficulty=extreme"], "data.difficulty", "easy, medium, hard, mixed"),
    (["data.generator.max_value=5"], "data.generator", "max_value"),
    (["+data.generator.colour=red"], "data.generator", "unknown field(s) colour"),
    (["data=official", "data.n=-1"], "data.n", "null for every puzzle"),
    (["data=official", "data.n=0"], "data.n", "got 0"),
    (["data=official", "data.path=/no/such/release"], "data.path", "/no/such/release does not exist"),
    (["model=tiny-random", "model.prompt=nope"], "model.prompt", "prompt set 'nope'"),
    (["model._target_=no_such_module.Backend"], "model._target_", "no module named"),
    (["resources.infer_actors=0"], "resources.infer_actors", ">= 1"),
    (["resources.infer_gpus=-1"], "resources.infer_gpus", ">= 0"),
])
def test_each_bad_option_is_named(run_config, overrides, where, says):
    error = refusal(check_run_config, run_config(*overrides))
    assert error.where == where
    assert says in str(error)


def test_a_folder_without_the_release_layout_says_what_it_expected(run_config, tmp_path):
    (tmp_path / "release").mkdir()
    error = refusal(check_run_config, run_config("data=official", f"data.path={tmp_path}/release"))
    assert error.where == "data.path"
    assert "without the release's layout" in error.problem
    assert "Original/testset_hr.jsonl" in error.problem


def test_an_out_dir_that_is_a_file_is_refused(run_config, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("", encoding="utf-8")
    error = refusal(check_run_config, run_config(f"out_dir={taken}"))
    assert error.where == "out_dir" and "is a file" in error.problem
    error = refusal(writable_folder, str(taken / "below"), "out_dir")
    assert "cannot be created" in error.problem


def test_out_dir_uris_are_left_to_pyarrow():
    writable_folder("s3://bucket/runs", "out_dir")  # nothing to check here, nothing raised


@pytest.mark.parametrize("setup, says", [
    (lambda root: root / "missing", "does not exist"),
    (lambda root: adapter(root / "a", config=None), "holds no adapter_config.json"),
    (lambda root: adapter(root / "a", config="{nope"), "adapter_config.json is not valid JSON"),
    (lambda root: adapter(root / "a", config="[1, 2]"), "must hold a JSON object"),
    (lambda root: adapter(root / "a", weights=None), "holds no adapter weights"),
])
def test_adapter_folders_name_the_file_that_is_wrong(run_config, tmp_path, setup, says):
    folder = setup(tmp_path)
    error = refusal(check_run_config, run_config("model=tiny-random", f"model.adapter={folder}"))
    assert error.where == "model.adapter" and says in error.problem


def test_a_good_adapter_folder_passes(tmp_path):
    for weights in ("adapter_model.safetensors", "adapter_model.bin"):
        folder = adapter(tmp_path / weights, weights=weights)
        assert adapter_folder(str(folder), "model.adapter") == folder
    file = tmp_path / "adapter_model.safetensors" / "adapter_model.safetensors"
    assert "is a file" in refusal(adapter_folder, str(file), "model.adapter").problem


def test_a_config_error_reads_as_where_then_what_and_survives_pickling():
    error = ConfigError("data.n", "must be a whole number >= 1, got 0")
    assert str(error) == "data.n: must be a whole number >= 1, got 0"
    copy = pickle.loads(pickle.dumps(error))  # how it crosses from a Ray worker
    assert (copy.where, copy.problem, str(copy)) == (error.where, error.problem, str(error))
    named = ConfigError("train", "train.epochs must be at least 1, got 0")
    assert str(named) == "train.epochs must be at least 1, got 0"  # not "train: train.epochs"


# --- fine-tuning ----------------------------------------------------------------------------


def compose_train(tmp_path: Path, *overrides: str):
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        return compose("train", overrides=[f"out_dir={tmp_path / 'train'}", *overrides])


@pytest.mark.parametrize("overrides, where, says", [
    (["dataset.n_puzzles=0"], "dataset", "dataset.n_puzzles must be at least 1"),
    (["dataset.styles=[nope]"], "dataset.styles[0]", "unknown style 'nope'"),
    (["dataset.difficulty=extreme"], "dataset.difficulty", "easy, medium, hard, mixed"),
    (["dataset.exclude_official=/no/such/release"], "dataset.exclude_official", "does not exist"),
    (["dataset.exclude_generated=[{n: 0, difficulty: mixed, seed: 0}]"],
     "dataset.exclude_generated[0].n", "got 0"),
    (["train.epochs=0"], "train", "train.epochs must be at least 1"),
    (["scaling.num_workers=0"], "scaling.num_workers", ">= 1"),
    (["model=oracle"], "model", "needs a local transformers model"),
    (["model.adapter=/some/adapter"], "model", "model.adapter is set"),
    (["method=grpo", "grpo.rollouts=0"], "grpo", "rollouts"),
    (["method=grpo", "grpo.prompts_per_step=3"], "grpo", "prompts_per_step"),
    (["method=grpo", "init_adapter=/no/such/adapter"], "init_adapter", "does not exist"),
])
def test_each_bad_training_option_is_named(tmp_path, overrides, where, says):
    from crossmath.settings.train import check_train_config

    error = refusal(check_train_config, compose_train(tmp_path, *overrides))
    assert error.where == where
    assert says in str(error)


def test_the_shipped_training_config_passes(tmp_path, official_sample):
    from crossmath.settings.train import check_train_config

    check_train_config(compose_train(tmp_path, "model=qwen-vl", "model.prompt=crossmath-v1",
                                     f"dataset.exclude_official={official_sample}"))


def test_adapter_config_errors_say_line_and_column(tmp_path):
    folder = adapter(tmp_path / "a", config=json.dumps({"r": 8}, indent=1).replace('"r"', "r"))
    error = refusal(adapter_folder, str(folder), "model.adapter")
    assert "line 2, column 2" in error.problem
