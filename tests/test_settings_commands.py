"""Each command's settings, made once at its door from the composed config: frozen, names
resolved into the objects the command uses, and a wrong option the ``ConfigError`` it always
was (the run's own ``RunSettings``: tests/test_preflight.py)."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from crossmath.core.errors import ConfigError
from crossmath.drawing import Style, load_style
from crossmath.finetuning.collate import ExampleEncoder
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.grpo_settings import GrpoSettings
from crossmath.finetuning.job import build_dataset, method_job
from crossmath.finetuning.modeling import load_processor_for
from crossmath.finetuning.scaling import RayScaling
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.models import prompts
from crossmath.models.openai_server import FaultPlan
from crossmath.puzzle.consistency import release_jsonl_files
from crossmath.puzzle.synthesis import GeneratorConfig
from crossmath.settings.generate import GenerateSettings
from crossmath.settings.lint import LintSettings
from crossmath.settings.render import RenderSettings
from crossmath.settings.report import ReportSettings
from crossmath.settings.score import ScoreSettings
from crossmath.settings.serve import ServeSettings
from crossmath.settings.train import TrainJobSettings
from tests.conftest import REPO_ROOT


def composed(name: str, *overrides: str, module: str = "crossmath.conf", **options):
    with initialize_config_module(module, version_base="1.3"):
        return compose(name, overrides=list(overrides), **options)


def refused(make, cfg) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        make(cfg)
    return caught.value


def assert_frozen(settings) -> None:
    first = dataclasses.fields(settings)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(settings, first, None)


def test_generate_settings_hold_styles_and_the_generator(tmp_path):
    cfg = composed("generate", "n=3", "difficulty=easy", "styles=[original,beige]",
                   f"out={tmp_path / 'set'}", "generator.max_value=99")
    settings = GenerateSettings.from_config(cfg)
    assert_frozen(settings)
    assert settings.styles == (load_style("original"), load_style("beige"))
    assert settings.generator == GeneratorConfig(**OmegaConf.to_container(cfg.generator))
    assert settings.generator.max_value == 99
    assert (settings.n, settings.difficulty, settings.out) == (3, "easy", tmp_path / "set")
    error = refused(GenerateSettings.from_config, composed("generate", "n=0"))
    assert str(error) == "n=0: the number of puzzles must be an integer of at least 1"
    assert not (tmp_path / "set").exists()


def test_lint_settings_hold_the_files_a_folder_names(official_sample, tmp_path):
    settings = LintSettings.from_config(composed("lint", f"path={official_sample}"))
    assert_frozen(settings)
    assert settings.files == tuple(release_jsonl_files(str(official_sample)))
    assert len(settings.files) == 4 and all(isinstance(path, Path) for path in settings.files)
    error = refused(LintSettings.from_config, composed("lint", f"path={tmp_path / 'nope'}"))
    assert (error.where, error.problem) == ("path", f"{tmp_path / 'nope'} does not exist")


def test_score_settings_check_at_the_door_and_read_as_given_for_the_run(official_jsonl, tmp_path):
    log = tmp_path / "P_run_1.log"
    log.write_text("[1]\n", encoding="utf-8")
    cfg = composed("score", f"data={official_jsonl}", f"preds={tmp_path / 'P_run_*.log'}",
                   module="crossmath.conf.score")
    settings = ScoreSettings.from_config(cfg)
    assert_frozen(settings)
    assert settings == ScoreSettings(str(official_jsonl), str(tmp_path / "P_run_*.log"),
                                     allow_partial=False, save_json=None)
    missing = composed("score", f"data={tmp_path / 'nope.jsonl'}", f"preds={log}",
                       module="crossmath.conf.score")
    error = refused(ScoreSettings.from_config, missing)
    assert (error.where, error.problem) == ("data", f"{tmp_path / 'nope.jsonl'} does not exist")
    # the run reads them unchecked: scoring names the file it cannot open, as it always did
    assert ScoreSettings.as_given(missing).data == str(tmp_path / "nope.jsonl")


def test_render_settings_resolve_the_style_group_into_a_style(official_jsonl, tmp_path):
    cfg = composed("render", f"path={official_jsonl}", "style=beige", f"out={tmp_path / 'out'}",
                   return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # as hydra.main does: the door reads the choice
    try:
        settings = RenderSettings.from_config(cfg)
        error = refused(RenderSettings.from_config, composed(
            "render", f"path={tmp_path / 'empty.jsonl'}", f"out={tmp_path / 'out'}",
            return_hydra_config=True))
    finally:
        HydraConfig.instance().cfg = None
    assert_frozen(settings)
    assert isinstance(settings.style, Style) and settings.style == load_style("beige")
    assert (settings.path, settings.source) == (official_jsonl, str(official_jsonl))
    assert (error.where, error.problem) == ("path", f"{tmp_path / 'empty.jsonl'} does not exist")


def test_serve_settings_read_the_model_and_the_key(monkeypatch):
    monkeypatch.setenv("CROSSMATH_TEST_KEY", "s3cret")
    cfg = composed("serve", "server.api_key_env=CROSSMATH_TEST_KEY", "server.port=0",
                   "server.faults.fail_first=2")
    settings = ServeSettings.from_config(cfg)
    assert_frozen(settings)
    assert settings.model == OmegaConf.to_container(cfg.model, resolve=True)
    assert (settings.api_key, settings.port, settings.served_model_name) == ("s3cret", 0,
                                                                             "tiny-random")
    assert settings.faults == FaultPlan(fail_first=2)
    monkeypatch.delenv("CROSSMATH_TEST_KEY")
    error = refused(ServeSettings.from_config, cfg)
    assert str(error) == ("server.api_key_env: names 'CROSSMATH_TEST_KEY', which is not set in "
                          "the environment")
    assert refused(ServeSettings.from_config, composed(
        "serve", "+server.faults.fail_frist=1")).where == "server.faults"


def test_report_settings_need_a_store_that_exists(tmp_path):
    database = tmp_path / "mlflow.db"
    database.touch()  # the door asks only that it exists
    uri = f"sqlite:///{database}"
    settings = ReportSettings.from_config(composed(
        "report", f"mlflow.tracking_uri={uri}", "metric=micro_acc", f"out={tmp_path}"))
    assert_frozen(settings)
    assert settings == ReportSettings(metric="micro_acc", tracking_uri=uri,
                                      experiment="crossmath", compare_style="all",
                                      out=str(tmp_path), stale_after_minutes=15)
    error = refused(ReportSettings.from_config, composed("report", "metric=accuracy"))
    assert str(error) == ("metric: must be one of macro_acc, micro_acc, lenient_macro_acc; got "
                          "'accuracy'")
    database.unlink()
    error = refused(ReportSettings.from_config, composed("report", f"mlflow.tracking_uri={uri}"))
    assert error.where == "mlflow.tracking_uri" and "does not exist" in error.problem


def compose_train(tmp_path: Path, models: str, *overrides: str):
    return composed("train", "model=tiny-random", f"model.model.cache_dir={models}",
                    f"out_dir={tmp_path / 'train'}", *overrides)


def test_train_settings_hold_each_section_parsed(tmp_path, tiny_model_config, monkeypatch):
    models = tiny_model_config["model"]["cache_dir"]
    monkeypatch.chdir(tmp_path)
    cfg = compose_train(tmp_path, models, "out_dir=relative/train")
    options = OmegaConf.to_container(cfg, resolve=True)
    settings = TrainJobSettings.from_config(cfg)
    assert_frozen(settings)
    assert settings.config == options  # the MLflow run's params, as before
    assert settings.out_dir == tmp_path / "relative" / "train"  # absolute: Ray Train needs it
    assert settings.train == TrainSettings.from_mapping(options["train"])
    assert settings.scaling == RayScaling(**options["scaling"])
    assert (settings.method, settings.grpo, settings.init_adapter) == ("sft", None, None)
    assert Path(settings.model_spec.path).is_dir() and settings.model_name == "tiny-random"
    dataset = {k: v for k, v in options["dataset"].items()
               if k not in ("build_dir", "path", "cache_dir", "exclude_generated",
                            "exclude_official")}
    assert settings.dataset.spec == TrainingSetSpec.from_mapping(dataset)
    assert settings.dataset.styles == {name: load_style(name) for name in dataset["styles"]}

    grpo = TrainJobSettings.from_config(compose_train(tmp_path, models, "method=grpo"))
    assert grpo.grpo == GrpoSettings.from_mapping(
        OmegaConf.to_container(compose_train(tmp_path, models, "method=grpo").grpo, resolve=True))
    error = refused(TrainJobSettings.from_config,
                    compose_train(tmp_path, models, "train.epochs=0"))
    assert (error.where, str(error)) == ("train", "train.epochs must be at least 1, got 0")


def test_the_training_set_is_drawn_with_the_styles_the_door_read(tmp_path, tiny_model_config):
    """A style given as a file is read once, at the door: the set is built from its ``Style``
    even once the file is gone (a worker node need not have it)."""
    style_file = tmp_path / "mine.yaml"
    shutil.copyfile(REPO_ROOT / "conf" / "style" / "beige.yaml", style_file)
    settings = TrainJobSettings.from_config(compose_train(
        tmp_path, tiny_model_config["model"]["cache_dir"], f"dataset.styles=[{style_file}]",
        "dataset.n_puzzles=1", "dataset.difficulty=easy", "dataset.modalities=[image]",
        "dataset.exclude_generated=[]"))
    assert settings.dataset.styles[str(style_file)].name == "beige"
    style_file.unlink()
    built = build_dataset(settings.dataset)
    rows = built.read(columns=["style", "image"]).to_pylist()
    assert [row["style"] for row in rows] == [str(style_file)]
    assert rows[0]["image"].startswith(b"\x89PNG")


def test_the_workers_get_the_model_the_door_resolved(tmp_path, tiny_model_config, tiny_encoder,
                                                     monkeypatch):
    """The job a worker receives carries the door's ``ModelSpec``, its prompt set read: once the
    set can no longer be found by name (a user's file gone, the shipped folder empty), the
    unpickled job still encodes the very prompt tokens; the weights' folder alone is derived on
    the worker's node, from the builder the config gave."""
    prompt_file = tmp_path / "mine.yaml"
    shutil.copyfile(prompts.TEMPLATE_DIR / "crossmath-v1.yaml", prompt_file)
    models = tiny_model_config["model"]["cache_dir"]
    doors = {method: TrainJobSettings.from_config(compose_train(
        tmp_path, models, f"method={method}", f"model.prompt={prompt_file}"))
        for method in ("sft", "grpo")}
    spec = doors["sft"].model_spec
    assert spec.prompt_set == prompts.load_prompt_template(prompt_file)
    assert doors["sft"].config["model"]["prompt"] == str(prompt_file)  # MLflow's params: the name
    built = build_training_set(TrainingSetSpec(n_puzzles=1, seed=3, styles=("original",),
                                               modalities=("text", "image")), tmp_path / "set")
    prompt_file.unlink()
    (tmp_path / "no-templates").mkdir()
    monkeypatch.setattr(prompts, "TEMPLATE_DIR", tmp_path / "no-templates")
    with pytest.raises(prompts.PromptTemplateError):
        prompts.load_prompt_template("crossmath-v1")

    for method, settings in doors.items():
        job = pickle.loads(pickle.dumps(method_job(settings)(load_examples=built.read,
                                                             metrics=None)))
        assert job.spec == settings.model_spec, method
        local = job.spec.on_this_node()
        assert local.path == spec.path and local.prompt_set is job.spec.prompt_set
        encoder = ExampleEncoder(load_processor_for(local), local)
        for row in built.read().to_pylist():
            ours, door = encoder.encode(row), tiny_encoder.encode(row)
            assert ours.n_prompt_tokens == door.n_prompt_tokens, (method, row["modality"])
            assert all(torch.equal(ours.tokens[key], door.tokens[key]) for key in door.tokens)

    elsewhere = dataclasses.replace(spec, path=str(tmp_path / "only-on-the-driver"))
    assert elsewhere.on_this_node().path == spec.path  # the builder, run (idempotently) here
    by_path = dataclasses.replace(spec, weights=spec.path)
    assert by_path.on_this_node() is by_path
