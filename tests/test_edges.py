"""Reliability at the edges (issue #21), one test per problem a new user met: no hangs, no
silent substitutions, clean stops, one line for every wrong input (the wrong inputs themselves
are in ``test_bad_inputs.py``), nothing started when there is nothing to run."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from crossmath.metrics.transcription import TRANSCRIBED
from crossmath.models.base import TEXT_STYLE
from crossmath.pipeline import evaluation as evaluation_module
from crossmath.pipeline.evaluation import plan_evaluation
from crossmath.pipeline.evaluation import run_evaluation as evaluate
from crossmath.pipeline.run_record import EvaluationRunRecord
from crossmath.pipeline.shards import PredictionStore
from crossmath.puzzle.records import iter_record_lines
from crossmath.runtime.ray_cluster import DEFAULT_CONNECT_TIMEOUT_S, connect_timeout
from crossmath.summary.run_labels import evaluation_labels
from crossmath.summary.views import compare_runs
from crossmath.tasks.crossmath.sources import ReleaseImagesMissing
from tests.conftest import OFFICIAL_STYLES
from tests.support import command_env, run_command
from tests.test_reporting import _evaluation

# The quick start's evaluation (python -m crossmath.run model=tiny-random) as main had it
# before this issue: the ids of existing evaluations must not change.
QUICK_START_ID = "2b1416fcfc74"


def closed_port() -> int:
    """A local port that was free a moment ago: nothing listens on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stderr_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, done.stdout[-2000:]
    return lines[-1]


# --- 1. an unreachable ray.address ----------------------------------------------------------


@pytest.mark.slow
def test_an_unreachable_ray_address_stops_at_the_door_touching_nothing(run_config, tmp_path):
    overrides = ["model=oracle", "data.n=2", "samples=1", "modalities=[text]"]
    planned = plan_evaluation(run_config(*overrides))
    uri = run_config().mlflow.tracking_uri
    client = mlflow.MlflowClient(uri)
    earlier = client.create_run(client.create_experiment("crossmath"),
                                tags={"evaluation_id": planned.evaluation_id})
    client.set_terminated(earlier.info.run_id)  # an earlier, finished run of this evaluation
    finished = client.get_run(earlier.info.run_id).info
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    done = subprocess.run(
        run_command([*overrides, f"ray.address={address}", "ray.connect_timeout_s=5"],
                    tmp_path / "out", tmp_path / "mlflow.db"),
        cwd=tmp_path, env=command_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and time.monotonic() - started < 40, done.stderr[-3000:]
    line = stderr_line(done)
    assert line.startswith(f"crossmath.run: ray.address: no Ray cluster answers at {address}")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stdout
    again = client.get_run(earlier.info.run_id).info  # not reopened, not left RUNNING
    assert (again.status, again.end_time) == ("FINISHED", finished.end_time)
    assert len(client.search_runs([earlier.info.experiment_id])) == 1
    assert not (tmp_path / "out").exists()


def test_the_connection_deadline_defaults_to_30_seconds_and_must_be_positive(run_config):
    assert run_config().ray.connect_timeout_s == DEFAULT_CONNECT_TIMEOUT_S == 30
    assert connect_timeout({}) == 30
    with pytest.raises(ValueError, match="ray.connect_timeout_s"):
        connect_timeout({"connect_timeout_s": 0})


# --- clean stops (a main job's SIGTERM: test_resume_sampling.py, which resumes it too) -------


@pytest.mark.slow
def test_sigterm_stops_the_server_with_its_status(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "crossmath.serve", "model=oracle",
                                "server.port=0"], cwd=tmp_path, env=command_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in process.stdout:  # uvicorn says so once it listens
        if "startup complete" in line:
            break
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    assert output.strip().splitlines()[-1] == "crossmath.serve: stopped by SIGTERM"


# --- 2. official images are the release's or nothing ----------------------------------------


def _release_copy(official_sample: Path, tmp_path: Path) -> tuple[Path, Path]:
    folder, _ = OFFICIAL_STYLES["original"]
    release = tmp_path / "release"
    shutil.copytree(official_sample / folder, release / folder)
    return release, sorted((release / folder).rglob("*.png"))[0]


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_missing_or_broken_release_image_stops_at_the_door(run_config, official_sample,
                                                             tmp_path, damage):
    release, image = _release_copy(official_sample, tmp_path)
    if damage == "deleted":
        image.unlink()
    else:
        image.write_bytes(image.read_bytes()[:400])
    overrides = ["model=oracle", "data=official", f"data.path={release}", "styles=[original]",
                 "modalities=[image]", "samples=1"]
    with pytest.raises(ReleaseImagesMissing) as stopped:
        plan_evaluation(run_config(*overrides))
    assert "1 release image(s) missing or unreadable" in str(stopped.value)
    assert image.name in str(stopped.value) and "data.images=render" in str(stopped.value)
    substituted = plan_evaluation(run_config(*overrides, "data.images=render"))
    name = image.name.split("_blank")[0]
    assert substituted.settings["data"]["rendered_in_place"] == [f"original/{name}"]
    assert (name, "original") not in substituted.questions.puzzle_set.official_images


def test_images_render_changes_no_id_where_nothing_is_missing(run_config, official_sample):
    overrides = ["model=oracle", "data=official", f"data.path={official_sample}", "samples=1"]
    assert plan_evaluation(run_config(*overrides)).evaluation_id == \
        plan_evaluation(run_config(*overrides, "data.images=render")).evaluation_id


def test_the_quick_starts_evaluation_keeps_its_id(run_config, tiny_model_config):
    cache = tiny_model_config["model"]["cache_dir"]
    planned = plan_evaluation(run_config("model=tiny-random", f"model.model.cache_dir={cache}"))
    assert planned.evaluation_id[:12] == QUICK_START_ID


# --- 3. model=openai against crossmath.serve -------------------------------------------------


@pytest.mark.slow
def test_the_openai_client_at_our_server_gets_every_request_answered(ray_local, run_config,
                                                                     tiny_model_config):
    """Both sides at their defaults: the client asks temperature 0, the tiny model behind the
    server samples at 1; the server decodes each request as it asks (greedily)."""
    import hydra.utils

    from crossmath.models.config import backend_arguments
    from crossmath.models.openai_server import create_app, serve_in_thread

    backend = hydra.utils.instantiate(backend_arguments(tiny_model_config))
    with serve_in_thread(create_app(backend)) as base_url:
        outcome = evaluate(run_config("model=openai", f"model.base_url={base_url}",
                                      f"model.model={backend.name}", "data.n=1", "samples=1",
                                      "styles=[original]", "resources.infer_cpus=0.5"))
    errors = outcome.predictions.column("error").to_pylist()
    assert outcome.complete and len(errors) == 3 and errors == [None] * 3


# --- 4. empty input files -------------------------------------------------------------------


@pytest.mark.slow
def test_an_empty_jsonl_stops_the_run_at_the_door(tmp_path):
    empty = tmp_path / "testset_hr.jsonl"
    empty.write_text("\n", encoding="utf-8")
    done = subprocess.run(run_command(["data=official", f"data.path={empty}"], tmp_path / "out",
                                      tmp_path / "mlflow.db"),
                          cwd=tmp_path, env=command_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == \
        f"crossmath.run: data.path: {empty} is empty"
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlflow.db").exists()


# --- 6. the release's inconsistent records --------------------------------------------------


@pytest.mark.slow
def test_records_lint_flags_are_named_and_scored_both_ways(ray_local, run_config, official_jsonl,
                                                           tmp_path, caplog):
    lines = [json.loads(line) for line in official_jsonl.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    lines[0]["markdown_table"] = lines[0]["markdown_table"].replace("÷", "+", 1)
    broken = tmp_path / "testset_hr.jsonl"
    broken.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n",
                      encoding="utf-8")
    flagged = next(iter_record_lines(broken)).name
    with caplog.at_level(logging.WARNING):
        outcome = evaluate(run_config("model=oracle", "data=official", f"data.path={broken}",
                                      "samples=1", "modalities=[text]"))
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lint flags")]
    assert len(said) == 1 and f"{flagged} (" in said[0] and "1 of 12 records" in said[0]
    scores = outcome.scores
    assert outcome.evaluation.group("oracle", "text", TEXT_STYLE).macro.mean == \
        pytest.approx(100 * 11 / 12)  # every record, as the release scores them
    assert scores.consistent.group("oracle", "text", TEXT_STYLE).macro.mean == 100.0
    metrics = scores.flat_metrics("oracle")
    assert metrics[f"consistent/text/{TEXT_STYLE}/macro_acc"] == 100.0
    assert metrics["lint/oracle_ceiling"] == pytest.approx(100 * 11 / 12)
    report = (outcome.out_dir / "report.md").read_text(encoding="utf-8")
    assert "## Records lint flags" in report and f"| {flagged} |" in report
    saved = json.loads((outcome.out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert saved["consistency"]["oracle_ceiling"] == pytest.approx(100 * 11 / 12)


# --- 7. noise and small untruths ------------------------------------------------------------


def test_a_json_error_says_where_once():
    reasons = []
    for text in ('{"a": "unterminated', '{"a": 1,}', "oops"):
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            from crossmath.puzzle.records import json_error

            reasons.append(json_error(error))
    assert reasons[0] == "Unterminated string starting at line 1, column 7"
    assert not any("at at" in reason for reason in reasons)


def test_the_relative_folder_warning_names_the_option_given(run_config, caplog):
    with caplog.at_level(logging.WARNING):
        evaluation_module._warn_if_node_local(run_config("ray.address=auto", "out_dir=null"))
    assert [r.getMessage().split()[0] for r in caplog.records] == ["runs_dir"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        evaluation_module._warn_if_node_local(run_config("ray.address=auto", "out_dir=rel/dir"))
    assert [r.getMessage().split()[0] for r in caplog.records] == ["out_dir"]


@pytest.mark.slow
def test_ray_workers_find_the_ray_that_started_them_among_several(ray_local, tmp_path):
    """Another Ray runs on this machine (the test session's): Ray Train's workers ask the state
    API without an address, which must find this process's Ray, not "multiple instances"."""
    script = (
        "import ray\n"
        "from crossmath.runtime.ray_cluster import connect_ray\n"
        "connect_ray({'num_cpus': 1}, dashboard=True)\n"
        "@ray.remote(num_cpus=0)\n"
        "def actors():\n"
        "    from ray.util.state import list_actors\n"
        "    return len(list_actors())\n"
        "print('actors', ray.get(actors.remote()))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=command_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "actors" in done.stdout, done.stderr[-3000:]
    assert "multiple active Ray instances" not in done.stderr


# --- 8. the comparison report ---------------------------------------------------------------


def test_comparison_labels_tell_base_adapter_and_remote_evaluations_apart():
    hf = {"model.name": "qwen2.5-vl-3b", "model._target_": "crossmath.models.hf.HFBackend",
          "model.adapter": "None", "data.name": "official"}
    tuned = {**hf, "model.adapter": "/efs/tuned/qwen2.5-vl-3b/sft/adapter"}
    remote = {**hf, "model._target_": "crossmath.models.openai_backend.OpenAIChatBackend",
              "model.model": "Qwen/Qwen2.5-VL-3B-Instruct", "model.base_url": "http://gpu:8000/v1"}
    labels = evaluation_labels([(hf, "a"), (tuned, "b"), (remote, "c"), (hf, "d")])
    assert labels == ["qwen2.5-vl-3b [hf] #1", "qwen2.5-vl-3b + sft/adapter [hf]",
                      "qwen2.5-vl-3b [openai Qwen/Qwen2.5-VL-3B-Instruct @ gpu:8000]",
                      "qwen2.5-vl-3b [hf] #2"]


def test_the_comparison_plot_has_every_series_in_a_legend_at_a_sensible_size(tmp_path):
    from PIL import Image

    probed = _evaluation("m", {"text": 0.9, "image": 0.4, "hybrid": 0.6, TRANSCRIBED: 0.7},
                         seed=1, modalities=("text", "image", "hybrid", TRANSCRIBED))
    plain = _evaluation("m", {"text": 0.8, "image": 0.3, "hybrid": 0.5}, seed=2)
    labels = {"a long model name [openai Qwen/Qwen2.5-VL-7B-Instruct @ gpu-box:8000]": probed,
              "oracle [oracle]": plain}
    shown = []
    import crossmath.summary.views as views

    real_save = views.save_figure

    def keep_legends(figure, path):
        shown.extend(text.get_text() for axes in figure.axes if axes.get_legend()
                     for text in axes.get_legend().get_texts())
        return real_save(figure, path)

    views.save_figure = keep_legends
    try:
        result = compare_runs(labels, tmp_path, ceilings={"oracle [oracle]": 97.2})
    finally:
        views.save_figure = real_save
    gaps = {name for name in ("T-TI", "T-I", "T-That", "That-I")}
    assert gaps <= set(shown) and "oracle's ceiling (lint)" in shown
    assert {"text (T)", "image (I)", "hybrid (TI)"} <= set(shown)
    width, height = Image.open(result.plot_path).size
    assert width <= 1400 and height <= 1000
    assert "| oracle [oracle] | 97.2 |" in result.markdown


# --- 9. nothing to run ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_resume_with_nothing_to_run_starts_no_ray_and_opens_no_mlflow(ray_local, run_config,
                                                                        monkeypatch):
    cfg = run_config("model=oracle", "data.n=2", "samples=1", "styles=[original]")
    first = evaluate(cfg)

    def refuse(*args, **kwargs):
        raise AssertionError("a resume with nothing to run must not get here")

    monkeypatch.setattr(evaluation_module, "connect_ray", refuse)
    monkeypatch.setattr(EvaluationRunRecord, "open", refuse)
    again = evaluate(cfg)
    assert again.n_run_now == 0 and again.scores.to_dict() == first.scores.to_dict()
    assert again.mlflow_run_id == first.mlflow_run_id
    assert PredictionStore(str(first.out_dir)).saved_request_ids() == \
        set(first.predictions.column("request_id").to_pylist())

