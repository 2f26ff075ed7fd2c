"""Transfer tasks in the main job: ``task=mathverse-vision`` and ``task=mmmu-val`` on parquet
fixtures in the published schemas, with the answer-key double (100% by rule) and the random
baseline (an option letter at random) on every real item, logged as
``transfer/<task>/<scoring>/...`` in MLflow; options checked at the door."""

from __future__ import annotations

import json
import subprocess

import mlflow
import pyarrow.parquet as pq
import pytest

from crossmath.pipeline.evaluation import run_evaluation as evaluate
from crossmath.runtime.errors import ConfigError
from crossmath.settings.run import check_run_config
from crossmath.tasks import get_task
from tests import test_transfer_mathverse as mathverse
from tests import test_transfer_mmmu as mmmu
from tests.doubles import write_item_key
from tests.support import command_env, joining, run_command
from tests.test_command_errors import assert_stopped_at_the_door, crossmath, run_overrides
from tests.test_pipeline import _report
from tests.transfer_fixtures import write_mathverse as write_published_mathverse
from tests.transfer_fixtures import write_mmmu as write_published_mmmu


def write_mathverse(folder):
    return mathverse.write(folder / "MathVerse" / "testmini.parquet", mathverse.fixture_rows())


def write_mmmu(folder):
    root = folder / "MMMU"
    for subject, rows in (("Accounting", mmmu.ACCOUNTING), ("Math", mmmu.MATH),
                          ("Art_Theory", mmmu.ART_THEORY)):
        mmmu.write(root / subject / "validation-00000-of-00001.parquet", rows)
    return root


WRITERS = {"mathverse-vision": write_mathverse, "mmmu-val": write_mmmu}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mmmu-val"])  # MathVerse's: test_transfer_judge.py, judged
def test_the_answer_key_scores_every_item_and_the_run_logs_transfer_metrics(
        ray_local, run_config, tmp_path, task):
    path = WRITERS[task](tmp_path)
    items = get_task(task).load(path)
    key = write_item_key(items, tmp_path / "key.json")
    cfg = run_config("model=oracle", "model._target_=tests.doubles.AnswerKeyBackend",
                     f"+model.item_key={key}", "model.name=answer-key", f"task={task}",
                     f"task.path={path}", "samples=2")
    outcome = evaluate(cfg)
    assert outcome.complete and outcome.n_requests == outcome.n_run_now == 2 * len(items)
    summary = outcome.scores.summary
    assert summary.overall.accuracy == 100.0 and summary.overall.n == 2 * len(items)

    run = mlflow.MlflowClient(cfg.mlflow.tracking_uri).get_run(outcome.mlflow_run_id)
    metrics = run.data.metrics
    assert metrics[f"transfer/{task}/rule/acc"] == 100.0
    assert metrics[f"transfer/{task}/rule/type/multiple-choice/acc"] == 100.0
    assert metrics[f"transfer/{task}/rule/type/open/acc"] == 100.0
    subjects = {item.breakdown["subject"] for item in items}
    assert {f"transfer/{task}/rule/subject/{s}/acc" for s in subjects} <= set(metrics)
    # MMMU's official scoring runs on the same replies; MathVerse's needs a judge model
    assert (f"transfer/{task}/official/acc" in metrics) is (task == "mmmu-val")
    assert metrics[f"task/{task}/n_failed"] == 0.0
    assert run.data.tags["dataset"] == task and run.data.tags["task"] == task
    manifest = json.loads((outcome.out_dir / "evaluation.json").read_text(encoding="utf-8"))
    assert manifest["data"] == task and manifest["settings"]["task"]["name"] == task
    saved = json.loads((outcome.out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert saved["transfer"]["rule"]["overall"] == {"n": 2 * len(items),
                                                    "correct": 2 * len(items),
                                                    "answered": 2 * len(items)}
    assert "| all | " in (outcome.out_dir / "report.md").read_text(encoding="utf-8")
    judged = pq.read_table(outcome.out_dir / "items.parquet")
    assert sorted(judged.column("item_id").to_pylist()) == sorted(i.item_id for i in items)

    again = evaluate(cfg)  # resumed: nothing asked again, same tallies
    assert again.n_run_now == 0 and again.scores.to_dict() == outcome.scores.to_dict()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Both datasets in their published layouts, every real item (tests/transfer_fixtures)."""
    root = tmp_path_factory.mktemp("published")
    return {"mathverse-vision": write_published_mathverse(root / "MathVerse"),
            "mmmu-val": write_published_mmmu(root / "MMMU")}


@pytest.mark.slow
@pytest.mark.parametrize(("task", "n_items", "n_choice"), [("mathverse-vision", 788, 436),
                                                            ("mmmu-val", 900, 847)])
def test_random_runs_every_real_item_end_to_end(ray_local, run_config, published, task,
                                                n_items, n_choice):
    outcome = evaluate(run_config("model=random", f"task={task}",
                                  f"task.path={published[task]}", "samples=1"))
    scores = outcome.scores.scores
    by_type = scores.rule.groups["question_type"]
    assert outcome.complete and scores.rule.overall.n == n_items
    assert by_type["multiple-choice"].n == by_type["multiple-choice"].answered == n_choice
    # no guess, no answer; but MMMU's open rule finds the letter golds " a" of two open
    # questions (validation_Pharmacy_26, validation_Physics_21) inside "... no answer."
    assert by_type["open"].answered == by_type["open"].correct == (2 if task == "mmmu-val" else 0)
    items = {item.item_id: item for item in get_task(task).load(published[task])}
    for row in outcome.predictions.to_pylist():
        item = items[row["puzzle_id"]]
        if item.letters:  # chance reads each question's own letters
            assert get_task(task).judge(item, row["output"]).answer in item.letters
    if task == "mmmu-val":  # MMMU's parser reads the article of "A random guess." as option A
        assert scores.notes["official/random_picks"] == 0
        gold_a = sum(item.gold == ("A",) for item in items.values() if item.letters)
        assert scores.official.groups["question_type"]["multiple-choice"].correct == gold_a == 242
    assert scores.notes["skipped_items"] == 0


@pytest.mark.slow
def test_the_command_runs_a_task_and_says_how_it_scored(tmp_path, tracking_db, ray_local):
    path = write_mathverse(tmp_path)
    items = get_task("mathverse-vision").load(path)
    key = write_item_key(items, tmp_path / "key.json")
    done = subprocess.run(
        run_command(["model=oracle", "model._target_=tests.doubles.AnswerKeyBackend",
                     f"+model.item_key={key}", "task=mathverse-vision", f"task.path={path}",
                     "samples=1", joining(ray_local)], tmp_path / "out", tracking_db),
        cwd=tmp_path, env=command_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"mathverse-vision: accuracy 100.0% of {len(items)} replies" in done.stdout


@pytest.mark.parametrize(("overrides", "where"), [
    (["task=mmmu"], "task"),
    (["task=mmmu-val", "task.path=/no/such/folder"], "task.path"),
    (["task=mmmu-val", "task.n=0"], "task.n"),
    (["task=mmmu-val", "task.breakdown=subject"], "task.breakdown"),
])
def test_task_options_are_checked_at_the_door(run_config, overrides, where):
    try:
        cfg = run_config(*overrides)
    except Exception as error:  # Hydra refuses an unknown config group option itself
        assert "mmmu" in str(error) and where == "task"
        return
    with pytest.raises(ConfigError) as caught:
        check_run_config(cfg)
    assert caught.value.where == where


def test_a_breakdown_field_the_items_lack_is_refused_before_anything_runs(run_config, tmp_path):
    path = write_mmmu(tmp_path)
    with pytest.raises(ConfigError, match=r"task.breakdown: mmmu-val items have no field 'colour'"):
        evaluate(run_config("model=random", "task=mmmu-val", f"task.path={path}",
                            "task.breakdown=[subject,colour]"))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_transfer_runs_are_left_out_of_the_modality_comparison(ray_local, run_config, tmp_path,
                                                               capsys):
    """``crossmath.report`` compares CrossMath evaluations; a task's tallies sit beside them in
    the experiment and are skipped."""
    path = write_mmmu(tmp_path)
    evaluate(run_config("model=random", "task=mmmu-val", f"task.path={path}", "samples=1"))
    puzzles = evaluate(run_config("model=oracle", "data.n=2", "modalities=[text]", "samples=1",
                                  f"out_dir={tmp_path / 'puzzles'}"))
    printed = _report(run_config().mlflow.tracking_uri, tmp_path / "report", capsys)
    rows = [line for line in printed.splitlines() if line.startswith("| oracle [oracle] |")]
    assert len(rows) == 1 and puzzles.complete
    assert "mmmu" not in printed


@pytest.mark.slow
def test_a_malformed_dataset_file_stops_the_run_at_the_door(tmp_path):
    broken = tmp_path / "MathVerse" / "testmini.parquet"
    broken.parent.mkdir()
    broken.write_bytes(b"not parquet at all")
    done = crossmath("run", *run_overrides(tmp_path, "model=random", "task=mathverse-vision",
                                           f"task.path={broken.parent}"), cwd=tmp_path)
    assert_stopped_at_the_door(done, "run", str(broken), "not a readable parquet file")
    assert not (tmp_path / "out").exists()
