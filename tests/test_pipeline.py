"""The main job end to end on local Ray: oracle runs, resume, actor crashes,
identity (what reruns, what resumes), failed requests and the exit status."""

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest

from crossmath.models.base import TEXT_STYLE
from crossmath.models.call_log import read_call_log
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.pipeline.evaluation import run_evaluation as evaluate
from crossmath.pipeline.failures import EXIT_INCOMPLETE
from crossmath.pipeline.results_folder import ResultsFolderError
from crossmath.pipeline.units import expand_unit
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.settings.checks import resolved_styles
from crossmath.tasks.crossmath.requests import RequestPlan
from crossmath.tracking.mlflow_store import evaluation_runs
from tests.conftest import OFFICIAL_STYLES
from tests.support import command_env, joining, run_command

PUZZLES = generate_puzzles(3, "mixed", seed=1)


def test_request_ids_are_stable_and_distinct():
    plan = RequestPlan(["text", "image", "hybrid"], resolved_styles(["original", "beige"]), 2, None, "m")
    units = plan.units(PUZZLES)
    assert len(units) == 3 * 3  # per puzzle: one text unit and one per style
    ids = [r["request_id"] for u in units for r in u["requests"]]
    assert len(ids) == len(set(ids)) == 3 * (1 + 2 * 2) * 2
    assert ids == [r["request_id"] for u in plan.units(PUZZLES) for r in u["requests"]]
    other_prompt = RequestPlan(["text", "image", "hybrid"], resolved_styles(["original", "beige"]), 2,
                               load_prompt_template(DEFAULT_PROMPT), "m")
    assert set(ids).isdisjoint(r["request_id"] for u in other_prompt.units(PUZZLES) for r in u["requests"])
    text_units = [u for u in units if u["style"] == TEXT_STYLE]
    assert {r["modality"] for u in text_units for r in u["requests"]} == {"text"}


def test_units_expand_to_request_rows_with_their_image():
    plan = RequestPlan(["image", "hybrid"], resolved_styles(["original"]), 2,
                       load_prompt_template(DEFAULT_PROMPT), "m")
    (unit,) = plan.units(PUZZLES[:1])
    rows = expand_unit(unit, [b"png"])
    assert [row["request_id"] for row in rows] == [r["request_id"] for r in unit["requests"]]
    assert [row["images"] for row in rows] == [[b"png"]] * 4
    assert all(row["image_at"] == [0] and len(row["prompt_texts"]) == 1 for row in rows)
    assert all(row["attempt"] == 1 and "image_path" not in row for row in rows)


@pytest.mark.slow
def test_oracle_run_scores_logs_and_resumes(ray_local, run_config, tmp_path):
    cfg = run_config("model=oracle", "data.n=4", "samples=1", "styles=[original,beige]")
    outcome = evaluate(cfg)
    n_expected = 4 * (1 + 2 * 2)
    assert outcome.n_requests == outcome.n_run_now == n_expected and outcome.complete
    predictions = pq.read_table(outcome.out_dir / "predictions.parquet")
    assert predictions.num_rows == n_expected
    assert len(set(predictions.column("request_id").to_pylist())) == n_expected
    assert set(predictions.column("attempt").to_pylist()) == {1}
    ev = outcome.evaluation
    assert ev.group("oracle", "text", TEXT_STYLE).macro.mean == 100.0
    assert ev.group("oracle", "hybrid", "beige").macro.mean == 100.0
    assert ev.group("oracle", "image").macro.mean == 0.0
    assert ev.gap("oracle", "T-I", "macro_acc").estimate.gap == 100.0

    client = mlflow.MlflowClient(cfg.mlflow.tracking_uri)
    run = client.get_run(outcome.mlflow_run_id)
    assert run.data.metrics["text/markdown/macro_acc"] == 100.0
    assert run.data.metrics["gap/T-I/macro_acc"] == 100.0
    assert run.data.metrics["image/beige/n_failed"] == 0.0
    assert run.data.tags["model"] == "oracle" and run.data.tags["prompt_id"] == "none"
    assert run.data.tags["incomplete"] == "false"
    assert run.data.tags["evaluation_id"] == outcome.evaluation_id
    assert len(run.data.tags["dataset_fingerprint"]) == 12
    assert run.data.params["samples"] == "1"
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"predictions.parquet", "metrics.json", "report.md", "accuracy.png", "gaps.png",
            "evaluation.json"} <= artifacts
    metrics = json.loads((outcome.out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["failures"]["n_failed"] == 0 and metrics["failures"]["n_requests"] == n_expected

    again = evaluate(cfg)  # same command, same folder, same MLflow run: nothing to run
    assert again.n_run_now == 0 and again.predictions.num_rows == n_expected
    assert again.evaluation.to_dict() == ev.to_dict()
    assert again.mlflow_run_id == outcome.mlflow_run_id
    assert len(client.search_runs([run.info.experiment_id])) == 1


@pytest.mark.slow
def test_what_changes_a_prediction_reruns_and_nothing_else_does(ray_local, run_config, tmp_path):
    runs = tmp_path / "runs"
    common = ["model=random", "data.n=2", "modalities=[text,hybrid]", "styles=[original]",
              "samples=2", f"runs_dir={runs}", "out_dir=null"]
    first = evaluate(run_config(*common))
    n_requests = 2 * (1 + 1) * 2
    assert first.n_run_now == n_requests and first.out_dir.parent == runs / "random" / "generated-mixed-n2-seed0"
    assert first.out_dir.name == first.evaluation_id[:12]
    outputs = first.predictions.column("output").to_pylist()
    assert len(set(outputs)) > 1, "samples of the random baseline must differ"

    # settings that cannot change a text: the same evaluation, resumed
    same = evaluate(run_config(*common, "resources.call_sequences=3", "max_attempts=5"))
    assert (same.out_dir, same.mlflow_run_id, same.n_run_now) == (first.out_dir, first.mlflow_run_id, 0)

    # an answer-shaping setting: a new evaluation beside the first, answered anew
    reseeded = evaluate(run_config(*common, "model.seed=1"))
    assert reseeded.n_run_now == n_requests
    assert reseeded.out_dir != first.out_dir and reseeded.out_dir.parent == first.out_dir.parent
    assert reseeded.mlflow_run_id != first.mlflow_run_id
    assert reseeded.predictions.column("output").to_pylist() != outputs

    # other data: other puzzles, another folder
    more = evaluate(run_config(*[o for o in common if o != "data.n=2"], "data.n=3"))
    assert more.out_dir.parent.name == "generated-mixed-n3-seed0" and more.n_run_now == 3 * 2 * 2

    # a folder of one's own holds one evaluation: another one is refused, saying why
    with pytest.raises(ResultsFolderError, match=r"backend.seed: 0 -> 1"):
        evaluate(run_config(*common, f"out_dir={first.out_dir}", "model.seed=1"))

    assert [run.evaluation_id for run in evaluation_runs(run_config().mlflow.tracking_uri,
                                                         "crossmath")] == [
        first.evaluation_id, reseeded.evaluation_id, more.evaluation_id]


@pytest.mark.slow
def test_oracle_scores_exactly_the_consistent_official_puzzles(ray_local, run_config, official_jsonl, tmp_path):
    lines = [json.loads(l) for l in official_jsonl.read_text(encoding="utf-8").splitlines() if l.strip()]
    lines[0]["markdown_table"] = lines[0]["markdown_table"].replace("÷", "+", 1)  # as the release's defects
    lines[5]["markdown_table"] = lines[5]["markdown_table"].replace("-", "+", 1)
    broken = tmp_path / "testset_hr.jsonl"
    broken.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n", encoding="utf-8")
    outcome = evaluate(run_config("model=oracle", "data=official", f"data.path={broken}", "samples=1",
                                  "modalities=[text]"))
    text = outcome.evaluation.group("oracle", "text", TEXT_STYLE)
    assert text.macro.mean == pytest.approx(100 * 10 / 12)


@pytest.mark.slow
def test_official_images_are_used_for_the_release_styles(ray_local, run_config, official_sample):
    outcome = evaluate(run_config("model=oracle", "data=official", f"data.path={official_sample}",
                                  "data.n=2", "samples=1", "modalities=[hybrid]", "styles=[altstyle]"))
    assert outcome.evaluation.group("oracle", "hybrid", "altstyle").macro.mean == 100.0
    assert outcome.n_requests == 2


@pytest.mark.slow
def test_the_backend_is_handed_full_calls_each_saved_as_one_shard(ray_local, run_config, tmp_path):
    log = tmp_path / "calls.jsonl"
    cfg = run_config("model=oracle", "model._target_=crossmath.models.flat_cost.FlatCostBackend",
                     "+model.batch_size=5", "+model.call_s=0", f"+model.call_log={log}",
                     "data.n=4", "samples=1", "styles=[original]",
                     "resources.infer_actors=2", "resources.infer_cpus=0.5")
    outcome = evaluate(cfg)
    calls = read_call_log(log)
    # 4 puzzles x (text, image, hybrid) = 12 requests, 5 sequences a call.
    assert sorted(call["sequences"] for call in calls) == [2, 5, 5]
    assert sorted(call["requests"] for call in calls) == [2, 5, 5]
    assert len(list((outcome.out_dir / "shards").glob("*.parquet"))) == len(calls)
    assert outcome.predictions.num_rows == 12
    assert outcome.evaluation.group("oracle", "hybrid").macro.mean == 100.0


@pytest.mark.slow
def test_crashed_inference_actor_is_restarted_without_losing_work(ray_local, run_config, tmp_path):
    marker = tmp_path / "crashed"
    cfg = run_config("model=oracle", "model._target_=tests.doubles.CrashingBackend",
                     f"+model.marker={marker}", "data.n=3", "samples=1", "styles=[original]",
                     "resources.call_sequences=2")
    outcome = evaluate(cfg)
    assert marker.exists(), "the backend never crashed, so the test proved nothing"
    ids = outcome.predictions.column("request_id").to_pylist()
    assert len(ids) == len(set(ids)) == 3 * 3
    assert outcome.evaluation.group("oracle", "hybrid").macro.mean == 100.0


def _report(tracking_uri: str, out: Path, capsys) -> str:
    """What ``python -m crossmath.report`` prints for the experiment at ``tracking_uri``."""
    from hydra import compose, initialize_config_module

    from crossmath import report

    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("report", overrides=[f"mlflow.tracking_uri={tracking_uri}", f"out={out}"])
    capsys.readouterr()
    report.main(cfg)
    return capsys.readouterr().out


@pytest.fixture
def outage():
    """A marker file in the temp folder: while it exists, ``FailingImageOracle`` fails."""
    marker = Path(tempfile.gettempdir()) / f"crossmath-outage-{uuid.uuid4().hex}"
    marker.touch()
    yield marker
    marker.unlink(missing_ok=True)


@pytest.mark.slow
def test_a_failing_request_fails_the_run_until_its_cause_is_gone(ray_local, run_config,
                                                                  official_sample, tmp_path,
                                                                  capsys, outage):
    folder, _ = OFFICIAL_STYLES["original"]
    first_image = sorted((official_sample / folder).rglob("*.png"))[0]
    overrides = ["model=oracle", "model._target_=tests.doubles.FailingImageOracle",
                 f"+model.image={first_image}", f"+model.outage={outage.name}",
                 "data=official", f"data.path={official_sample}", "modalities=[hybrid]",
                 "styles=[original]", "samples=1", "max_attempts=3"]
    out, db = tmp_path / "out", tmp_path / "mlflow.db"
    failed = subprocess.run(run_command([*overrides, joining(ray_local)], out, db), cwd=tmp_path,
                            env=command_env(), capture_output=True, text=True, timeout=300)
    assert failed.returncode == EXIT_INCOMPLETE, failed.stderr[-3000:]
    assert "INCOMPLETE: 1 of 12 requests failed (hybrid/original: 1)" in failed.stdout
    assert "rerun the same command to retry the 1 that have attempts left" in failed.stdout
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["failures"]["groups"] == [
        {"modality": "hybrid", "style": "original", "failed": 1, "requests": 12}]
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    (run,) = client.search_runs(["1"])
    assert run.data.tags["incomplete"] == "true" and run.data.metrics["n_failed"] == 1
    assert run.data.metrics["hybrid/original/macro_acc"] == pytest.approx(100 * 11 / 12)
    label = "oracle [FailingImageOracle]"
    assert f"| {label} (incomplete) |" in _report(f"sqlite:///{db}", tmp_path, capsys)

    cfg = run_config(*overrides, f"out_dir={out}", f"mlflow.tracking_uri=sqlite:///{db}")
    retried = evaluate(cfg)  # still failing: tried again, attempt 2 recorded
    assert retried.n_run_now == 1 and not retried.complete
    failure = retried.predictions.filter(retried.predictions.column("error").is_valid())
    assert failure.column("attempt").to_pylist() == [2]
    assert "cannot identify image" in failure.column("error")[0].as_py()

    outage.unlink()  # the cause is gone: the same request, asked again, is answered
    repaired = evaluate(cfg)
    assert repaired.complete and repaired.n_run_now == 1
    assert repaired.evaluation.group("oracle", "hybrid", "original").macro.mean == 100.0
    assert repaired.mlflow_run_id == run.info.run_id
    run = client.get_run(run.info.run_id)
    assert run.data.tags["incomplete"] == "false" and run.data.metrics["n_failed"] == 0
    assert run.data.metrics["hybrid/original/macro_acc"] == 100.0
    rows = [line for line in _report(f"sqlite:///{db}", tmp_path, capsys).splitlines()
            if line.startswith("| oracle")]
    assert rows == [row for row in rows if row.startswith(f"| {label} |")] and rows


@pytest.mark.slow
def test_unreachable_tracking_server_stops_the_run_before_any_model_loads(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "crossmath.run", "model=oracle", "data.n=2", f"out_dir={out}",
         "mlflow.tracking_uri=http://127.0.0.1:9"],  # the discard port: nothing answers
        cwd=tmp_path, env=command_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("crossmath.run: MLflow tracking store http://127.0.0.1:9 is not usable")
    assert "Traceback" not in result.stderr + result.stdout
    assert len((result.stderr + result.stdout).splitlines()) < 10
    assert not list(out.glob("shards/*.parquet"))  # no request was run
