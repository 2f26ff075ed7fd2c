"""The run command's door: ``RunSettings.from_config`` checks ``conf/run.yaml`` once and reads it
into plain values and resolved objects; the workers draw with the styles resolved there."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from crossmath.drawing import load_style
from crossmath.drawing.style import STYLE_DIR
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.pipeline.dataflow import StageResources, run_pipeline
from crossmath.pipeline.shards import PredictionStore
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.runtime.errors import ConfigError
from crossmath.settings.run import RunSettings
from crossmath.tasks.crossmath.requests import RequestPlan

ORACLE = {"_target_": "crossmath.models.baselines.OracleBackend", "name": "oracle"}


def test_the_config_is_read_once_into_plain_values_and_resolved_styles(run_config, tmp_path):
    own = tmp_path / "mine.yaml"
    shutil.copy(STYLE_DIR / "beige.yaml", own)
    settings = RunSettings.from_config(run_config(
        "model=tiny-random", f"styles=[original,{own}]", "samples=2",
        "resources.call_sequences=5", "data.n=3"))
    assert settings.style_names == ("original", str(own))
    assert settings.styles == {"original": load_style("original"), str(own): load_style(own)}
    assert settings.resources == StageResources(call_sequences=5)
    assert (settings.samples, settings.model_name, settings.task_name) == (2, "tiny-random",
                                                                          "crossmath")
    assert settings.data["n"] == 3 and isinstance(settings.model["model"], dict)
    assert settings.config["styles"] == ["original", str(own)]  # the MLflow params
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.samples = 1


def test_a_transfer_task_resolves_no_style(run_config, tmp_path):
    settings = RunSettings.from_config(run_config("task=mmmu-val", f"task.path={tmp_path}"))
    assert settings.styles == {} and settings.task_name == "mmmu-val"


def test_a_style_that_does_not_load_is_named_at_the_door(run_config, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("cell_size: [not, a, number]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as stopped:
        RunSettings.from_config(run_config(f"styles=[original,{broken}]"))
    assert str(stopped.value).startswith("styles[1]")


@pytest.mark.slow
def test_workers_draw_with_the_styles_resolved_at_the_door(ray_local, tmp_path):
    """A style given as a YAML path is read on the driver only: gone afterwards (as it would be
    on a worker node that never had it), its images are still drawn."""
    own = tmp_path / "mine.yaml"
    shutil.copy(STYLE_DIR / "beige.yaml", own)
    styles = {str(own): load_style(own)}
    plan = RequestPlan(["image"], styles, 1, load_prompt_template(DEFAULT_PROMPT), "oracle")
    units = plan.units(generate_puzzles(2, "easy", seed=4))
    own.unlink()
    result = run_pipeline(units, ORACLE, PredictionStore(str(tmp_path / "run")),
                          StageResources(), prompt_id=DEFAULT_PROMPT, styles=styles)
    assert result.n_requests == 2 and result.predictions.num_rows == 2
    assert result.predictions.column("error").to_pylist() == [None, None]
