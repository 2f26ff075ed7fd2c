"""The perception probe in the main job: two rounds, identities that hold the transcription,
exact scores with test doubles on the official sample. The tiny VLM runs the probe end to end
in the fine-tuning story's test (``test_finetune_story.py``: both rounds, the decomposition of
T−I, the report), with the rest of the main job."""

from __future__ import annotations

import json
import logging

import mlflow
import pyarrow.compute as pc
import pytest

from crossmath.metrics.transcription import TRANSCRIBE, TRANSCRIBED
from crossmath.models.base import TEXT_STYLE
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template, transcription_layout
from crossmath.pipeline.calls import call_table, plan_calls
from crossmath.pipeline.dataflow import attach_release_images
from crossmath.pipeline.evaluation import plan_evaluation
from crossmath.pipeline.evaluation import run_evaluation as evaluate
from crossmath.pipeline.inference_stage import InferPredictions
from crossmath.pipeline.shards import PREDICTION_SCHEMA, PredictionStore
from crossmath.pipeline.units import pending_units
from crossmath.puzzle.grid import is_number_token
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.runtime.errors import ConfigError
from crossmath.settings.checks import resolved_styles
from crossmath.settings.run import RunSettings, check_run_config
from crossmath.tasks.crossmath.requests import RequestPlan
from crossmath.tasks.crossmath.sources import official_puzzles
from tests.doubles import swapped_cells

PUZZLES = generate_puzzles(2, "easy", seed=4)
STYLES = ["original", "beige"]


def plan(samples: int = 2) -> RequestPlan:
    return RequestPlan(["text", "image", TRANSCRIBE], resolved_styles(["original"]), samples,
                       load_prompt_template(DEFAULT_PROMPT), "m")


def transcription(unit: dict, sample: int, output: str, error: str | None = None) -> dict:
    request = next(r for r in unit["requests"]
                   if r["modality"] == TRANSCRIBE and r["sample"] == sample)
    return {"request_id": request["request_id"], "puzzle_id": unit["puzzle_id"],
            "style": unit["style"], "modality": TRANSCRIBE, "sample": sample,
            "output": output, "error": error}


def test_transcribe_requests_share_the_image_unit_and_show_the_image_alone():
    text_unit, image_unit = plan().units(PUZZLES[:1])
    kinds = [r["modality"] for r in image_unit["requests"]]
    assert kinds == ["image", "image", TRANSCRIBE, TRANSCRIBE]
    asked = next(r for r in image_unit["requests"] if r["modality"] == TRANSCRIBE)
    ours = transcription_layout(load_prompt_template(DEFAULT_PROMPT))
    assert asked["prompt_texts"] == list(ours.texts) and asked["image_at"] == [0]
    assert PUZZLES[0].markdown_table not in asked["prompt_texts"][0]  # no grid leaks as text
    assert [r["modality"] for r in text_unit["requests"]] == ["text", "text"]


def test_each_transcription_is_shown_back_as_the_text_prompt_shows_a_grid():
    puzzle = PUZZLES[0]
    the_plan = plan()
    text_unit, image_unit = the_plan.units([puzzle])
    copied = f"<answer>\n{puzzle.grid.to_markdown()}\n</answer>"
    rows = [transcription(image_unit, 0, copied), transcription(image_unit, 1, "no table"),
            transcription(image_unit, 1, "", error="timeout")]
    first, second = the_plan.own_transcription_units([puzzle], rows)  # the failure is not asked
    [request] = first["requests"]
    assert (request["modality"], request["sample"], first["style"]) == (TRANSCRIBED, 0, "original")
    # a perfect copy is asked exactly as the text modality asks the true grid
    assert request["prompt_texts"] == text_unit["requests"][0]["prompt_texts"]
    assert request["request_id"] != text_unit["requests"][0]["request_id"]
    assert first["grid"] == puzzle.grid.to_markdown() and second["grid"] == ""
    # the same transcription is the same request; a changed one, or another sample, is new
    again = the_plan.own_transcription_units([puzzle], rows[:1])[0]["requests"][0]
    assert again["request_id"] == request["request_id"]
    changed = the_plan.own_transcription_units(
        [puzzle], [transcription(image_unit, 0, copied.replace("=", "+", 1))])
    assert changed[0]["requests"][0]["request_id"] != request["request_id"]
    assert second["requests"][0]["request_id"] != request["request_id"]


def test_the_inference_actor_asks_each_transcription_back_as_the_second_round_would(
        run_config, official_sample, tmp_path):
    """The stage itself, in this process (no Ray): a call of the first round is answered, then
    its transcriptions' follow-ups, each saved as one shard; they are exactly the requests the
    second round plans, so that round finds nothing left to ask."""
    cfg = run_config("model=oracle", "model._target_=tests.doubles.CopyGridBackend",
                     "model.name=copy-grid", "data=official", f"data.path={official_sample}",
                     "data.n=3", "samples=1", f"modalities=[text,{TRANSCRIBE}]",
                     "styles=[original]", f"out_dir={tmp_path / 'out'}")
    settings = RunSettings.from_config(cfg)
    planned = plan_evaluation(settings)
    questions = planned.questions
    units = questions.units(0, PREDICTION_SCHEMA.empty_table())
    (call,) = plan_calls(units, settings.resources.call_capacity(planned.model_config),
                         settings.styles)
    attach_release_images([call])
    store = PredictionStore(str(tmp_path / "out"))
    stage = InferPredictions(planned.model_config, store.root, questions.prompt_id,
                             follow_ups=questions.follow_ups(0))
    done = stage(call_table(call))

    first = {r["request_id"] for unit in units for r in unit["requests"]}
    saved = store.read()
    second_round = questions.units(1, saved)
    followed = {r["request_id"] for unit in second_round for r in unit["requests"]}
    assert len(first) == 3 * 2 and len(followed) == 3  # a follow-up per transcription
    ids = done.column("request_id").to_pylist()  # the call's answers, then its follow-ups'
    assert set(ids[:len(first)]) == first and set(ids[len(first):]) == followed
    assert len(list((tmp_path / "out" / "shards").glob("*.parquet"))) == 2  # call, follow-ups
    assert not pending_units(second_round, store.latest_attempts(), max_attempts=1)
    answers = saved.filter(pc.equal(saved["modality"], TRANSCRIBED)).to_pylist()
    assert all(a["error"] is None and a["pred"] for a in answers)  # solved from its own reading
    assert questions.follow_ups(1) is None  # nothing follows the second round


@pytest.mark.slow
def test_a_perfect_transcriber_reads_every_cell_and_its_own_reading_solves_as_text(
        ray_local, run_config, official_sample, caplog):
    cfg = run_config("model=oracle", "model._target_=tests.doubles.CopyGridBackend",
                     "model.name=copy-grid", "data=official", f"data.path={official_sample}",
                     "samples=1", f"modalities=[text,image,{TRANSCRIBE}]",
                     f"styles=[{','.join(STYLES)}]")
    with caplog.at_level(logging.INFO, logger="crossmath.pipeline.dataflow"):
        outcome = evaluate(cfg)
    assert outcome.complete and outcome.n_requests == outcome.n_run_now == 12 * (1 + 2 * 2 + 2)
    # the second round was asked by the first round's actors, right after each transcription
    rounds = [r.getMessage() for r in caplog.records if "to run" in r.getMessage()]
    assert rounds == ["60 requests, 0 settled already, 60 to run",
                      "24 requests, 24 settled already, 0 to run"], rounds
    probe = outcome.scores.probe
    for style in [*STYLES, "all"]:
        group = probe.group("copy-grid", style)
        assert group.metric("cell_acc").mean == 100.0 and group.metric("exact_rate").mean == 100.0
        assert group.metric("shape_error_rate").mean == 0.0
    ev = outcome.evaluation
    text = ev.group("copy-grid", "text", TEXT_STYLE).macro.mean
    assert all(ev.group("copy-grid", TRANSCRIBED, style).macro.mean == text for style in STYLES)
    assert ev.gap("copy-grid", "T-That", "macro_acc").estimate.gap == 0.0
    total = ev.gap("copy-grid", "T-I", "macro_acc").estimate.gap
    assert ev.gap("copy-grid", "That-I", "macro_acc").estimate.gap == total == text > 0

    run = mlflow.MlflowClient(cfg.mlflow.tracking_uri).get_run(outcome.mlflow_run_id)
    assert run.data.metrics["probe/beige/cell_acc"] == 100.0
    assert run.data.metrics["probe/all/number_cell_acc"] == 100.0
    assert run.data.metrics["gap/T-That/macro_acc"] == 0.0
    assert run.data.metrics["gap/That-I/original/macro_acc"] == total
    assert run.data.metrics["probe/all/reading_share"] == 0.0
    assert run.data.metrics["transcribe/original/n_failed"] == 0.0
    metrics = json.loads((outcome.out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert {group["style"] for group in metrics["probe"]["groups"]} == {*STYLES, "all"}
    report = (outcome.out_dir / "report.md").read_text(encoding="utf-8")
    assert "## Perception probe" in report and "T − T̂ (reading)" in report
    assert (outcome.out_dir / "probe.png").is_file()

    again = evaluate(cfg)  # both rounds resume: nothing is asked again
    assert again.n_run_now == 0 and again.scores.to_dict() == outcome.scores.to_dict()


@pytest.mark.slow
def test_two_numbers_misread_give_exactly_the_expected_cell_accuracy(
        ray_local, run_config, official_sample):
    outcome = evaluate(run_config(
        "model=oracle", "model._target_=tests.doubles.SwappedNumbersBackend",
        "model.name=swapped", "data=official", f"data.path={official_sample}", "samples=1",
        f"modalities=[text,{TRANSCRIBE}]", "styles=[original]"))
    grids = [p.grid for p in official_puzzles(str(official_sample), {}).puzzles]
    assert all(len({g[p] for p in swapped_cells(g)}) == 2 for g in grids)  # two cells differ
    cells = [g.n_rows * g.n_cols for g in grids]
    numbers = [sum(is_number_token(g[p]) for p in g.positions()) for g in grids]
    group = outcome.scores.probe.group("swapped", "original")
    assert group.metric("cell_acc").mean == pytest.approx(
        100 * sum((n - 2) / n for n in cells) / len(grids))
    assert group.metric("number_cell_acc").mean == pytest.approx(
        100 * sum((n - 2) / n for n in numbers) / len(grids))
    assert group.metric("operator_cell_acc").mean == group.metric("blank_cell_acc").mean == 100.0
    assert group.metric("exact_rate").mean == 0.0 and group.metric("shape_error_rate").mean == 0.0
    # the misread puzzles are other puzzles: solving them is not solving the true ones
    ev = outcome.evaluation
    assert ev.group("swapped", TRANSCRIBED, "original").macro.mean < \
        ev.group("swapped", "text", TEXT_STYLE).macro.mean


def test_transcribe_is_an_option_of_the_door_and_its_second_round_is_not(run_config):
    check_run_config(run_config(f"modalities=[text,{TRANSCRIBE}]"))
    with pytest.raises(ConfigError, match=r"modalities\[1\]: must be one of text, image, hybrid, "
                                          r"transcribe; got 'transcribed'"):
        check_run_config(run_config(f"modalities=[text,{TRANSCRIBED}]"))
    with pytest.raises(ConfigError, match="transcribe requests need a style"):
        check_run_config(run_config(f"modalities=[{TRANSCRIBE}]", "styles=[]"))
