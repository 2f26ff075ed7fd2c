"""Shared fixtures: the official sample lies in ``shared/`` beside the repository checkout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.tiers import (  # noqa: F401  (hooks: the fast tier's guard)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_runtest_protocol,
    pytest_runtest_setup,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_SAMPLE = REPO_ROOT.parent / "shared" / "official-sample"
OFFICIAL_STYLES = {  # style name -> (release folder, jsonl file)
    "original": ("Original", "testset_hr.jsonl"),
    "noborder": ("Noborder", "testset_noborder.jsonl"),
    "beige": ("Beige", "testset_hr_beige.jsonl"),
    "altstyle": ("Altstyle", "testset_altstyle.jsonl"),
}


@pytest.fixture(scope="session")
def official_sample() -> Path:
    """The folder holding the 12 shared official puzzles; a missing one is an error, not a skip."""
    assert OFFICIAL_SAMPLE.is_dir(), f"official sample not found at {OFFICIAL_SAMPLE}"
    return OFFICIAL_SAMPLE


@pytest.fixture(scope="session")
def official_jsonl(official_sample: Path) -> Path:
    """The original-style jsonl of the official sample."""
    folder, name = OFFICIAL_STYLES["original"]
    return official_sample / folder / name


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (starting Ray costs seconds); shut down at the end."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        # Ray's processes (and so its workers) get the repository on PYTHONPATH: a command in a
        # subprocess that joins this Ray (tests.support.joining) may name tests.doubles as its
        # model; this process's environment is left as it was
        inherited = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), inherited]))
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        finally:
            if inherited is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = inherited
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite database with all of MLflow's migrations applied, made once:
    migrating a new file costs seconds of CPU and disk syncs, copying this one milliseconds."""
    from mlflow.tracking import MlflowClient

    database = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{database}").search_experiments()  # creates and migrates it
    return database


@pytest.fixture
def tracking_db(tmp_path, mlflow_template) -> Path:
    """``tmp_path / "mlflow.db"``: an empty, migrated MLflow database (a copy of the template),
    as MLflow would have made it on first use."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template, database)
    return database


@pytest.fixture
def run_config(tmp_path, tracking_db):
    """Compose ``conf/run.yaml`` with overrides, outputs in ``tmp_path / "out"`` and MLflow in
    ``tracking_db`` (there already: a test of a run that must not touch MLflow needs its own)."""
    from hydra import compose, initialize_config_module

    def compose_run(*overrides: str):
        with initialize_config_module("crossmath.conf", version_base="1.3"):
            return compose("run", overrides=[
                f"out_dir={tmp_path / 'out'}",
                f"mlflow.tracking_uri=sqlite:///{tracking_db}",
                *overrides,
            ])

    return compose_run


@pytest.fixture(scope="session")
def tiny_model_config(tmp_path_factory) -> dict:
    """``conf/model/tiny-random.yaml`` resolved, its tiny VLM built once in a temp folder."""
    from omegaconf import OmegaConf

    from crossmath.models.tiny import build_tiny_random

    tiny = build_tiny_random(tmp_path_factory.getbasetemp() / "models")
    config = OmegaConf.load(REPO_ROOT / "conf" / "model" / "tiny-random.yaml")
    config.model.cache_dir = str(tiny.parent)
    return OmegaConf.to_container(config, resolve=True)


@pytest.fixture(scope="session")
def tiny_spec(tiny_model_config: dict):
    """The tiny VLM's ``ModelSpec``, as the backend and the training loop read it (its prompt set
    resolved, as the door resolves it)."""
    from crossmath.finetuning.model_spec import ModelSpec
    from crossmath.models.prompts import load_prompt_template

    return ModelSpec.from_backend_config(tiny_model_config,
                                         load_prompt_template(tiny_model_config["prompt"]))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_spec):
    """The tiny VLM's ``ExampleEncoder`` (its processor, prompt set and chat template)."""
    from crossmath.finetuning.collate import ExampleEncoder
    from crossmath.finetuning.modeling import load_processor_for

    return ExampleEncoder(load_processor_for(tiny_spec), tiny_spec)
