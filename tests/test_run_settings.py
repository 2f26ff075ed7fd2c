"""The run command's door: ``RunSettings.from_config`` checks ``conf/run.yaml`` once and reads it
into plain values and resolved objects; the workers draw with the styles resolved there."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections import Counter

import pyarrow as pa
import pytest

from crossmath.core.fingerprints import content_fingerprint
from crossmath.drawing import load_style
from crossmath.drawing.style import STYLE_DIR
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.pipeline.calls import CallCapacity, call_table, plan_calls
from crossmath.pipeline.dataflow import StageResources, run_pipeline
from crossmath.pipeline.evaluation import plan_evaluation
from crossmath.pipeline.identity import backend_identity
from crossmath.pipeline.render_stage import RenderImages
from crossmath.pipeline.shards import PREDICTION_SCHEMA, PredictionStore
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.runtime.errors import ConfigError
from crossmath.settings.run import RunSettings
from crossmath.tasks.crossmath.requests import RequestPlan
from crossmath.tasks.crossmath.sources import RELEASE_TEXT_LAYOUT

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


# --- each name read once, at the door -----------------------------------------------------


def counted(monkeypatch, original) -> Counter:
    """Every call of ``original`` (a loader) from any crossmath module, counted by argument."""
    calls: Counter = Counter()

    def counting(name_or_path):
        calls[str(name_or_path)] += 1
        return original(name_or_path)

    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "").startswith("crossmath")
                and getattr(module, original.__name__, None) is original):
            monkeypatch.setattr(module, original.__name__, counting)
    return calls


def driver_side(settings: RunSettings) -> list[str]:
    """What the main job does with ``settings`` on the driver and in its stages, without Ray:
    plan the evaluation, plan its calls, render them as a render actor does, and show the
    predictions as the MLflow table does; returns the evaluation's request ids."""
    planned = plan_evaluation(settings)
    units = planned.questions.units(0, PREDICTION_SCHEMA.empty_table())
    render = RenderImages(settings.styles)
    calls = [render(call_table(call)).to_pylist()[0]
             for call in plan_calls(units, CallCapacity(8), settings.styles)]
    assert all(unit["images"] for call in calls for unit in call["units"]
               if unit["modality"] != "text")
    rows = [{**{name: None for name in PREDICTION_SCHEMA.names},
             **{key: unit[key] for key in ("puzzle_id", "name", "difficulty", "style")},
             **{key: request[key] for key in ("request_id", "modality", "sample", "attempt")},
             "model": settings.model_name, "output": ""}
            for unit in units for request in unit["requests"]]
    table = planned.questions.prediction_table(pa.Table.from_pylist(rows,
                                                                    schema=PREDICTION_SCHEMA))
    assert table.images  # rendered (or the release's) images of the image requests
    return [row["request_id"] for row in rows]


@pytest.mark.parametrize("data", ["generated", "official"])
def test_each_style_and_the_prompt_set_are_read_once_per_run_at_the_door(
        run_config, tmp_path, monkeypatch, official_sample, data):
    own = tmp_path / "mine.yaml"
    shutil.copy(STYLE_DIR / "beige.yaml", own)
    styles = counted(monkeypatch, load_style)
    prompt_sets = counted(monkeypatch, load_prompt_template)
    source = (["data=official", f"data.path={official_sample}", "data.n=2"]
              if data == "official" else ["data.n=2"])
    settings = RunSettings.from_config(run_config(
        "model=openai", f"styles=[original,{own}]", "modalities=[text,image,hybrid,transcribe]",
        "samples=1", *source))
    assert styles == {"original": 1, str(own): 1} and prompt_sets == {"crossmath-v1": 1}
    assert settings.prompt_set.id == load_prompt_template("crossmath-v1").id
    styles.clear(), prompt_sets.clear()
    assert driver_side(settings)
    assert styles == {} and prompt_sets == {}  # nothing read again after the door


def test_a_style_file_is_read_at_the_door_only(run_config, tmp_path):
    """Gone after the door (as on a worker node that never had it), the style still plans,
    identifies, renders and shows its images, with the ids it had while the file was there."""
    own = tmp_path / "mine.yaml"
    shutil.copy(STYLE_DIR / "beige.yaml", own)
    config = run_config("model=oracle", f"styles=[{own}]", "modalities=[text,image]",
                        "samples=1", "data.n=2")
    with_the_file = plan_evaluation(RunSettings.from_config(config))
    settings = RunSettings.from_config(config)
    own.unlink()
    assert plan_evaluation(settings).evaluation_id == with_the_file.evaluation_id
    assert len(driver_side(settings)) == 2 * 2


def test_the_adapter_is_found_at_the_door_and_counted_by_its_content(run_config, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 4}', encoding="utf-8")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    settings = RunSettings.from_config(run_config("model=openai", f"+model.adapter={adapter}",
                                                  "data.n=1"))
    assert settings.adapter == adapter and settings.model["adapter"] == str(adapter)
    door = backend_identity(settings.model, 0, settings.adapter)
    assert door.settings["adapter"] == {"content": content_fingerprint(adapter)}
    assert door == backend_identity(settings.model, 0)  # the same identity as read from the path
    assert plan_evaluation(settings).backend == door
    assert RunSettings.from_config(run_config("model=openai")).adapter is None


def test_the_release_text_layout_is_the_original_styles():
    assert RELEASE_TEXT_LAYOUT == load_style("original").layout
