"""The one-command fine-tuning story: its plan (every stage evaluated alike on each task), and
the whole sequence on CPU with the tiny VLM, a parquet fixture of MMMU and the study's own
training set (base and SFT evaluated on CrossMath with the probe and on the transfer task, then
one comparison in files and in MLflow).

The end-to-end test is also the fine-tuning CLI's: the story is killed with SIGKILL once its SFT
step (``python -m crossmath.train model=tiny-random``, two Ray Train workers, the tiny preset's
sizes) has committed a checkpoint, and the same command run again must find the base
evaluations done, continue the training from that checkpoint in the same MLflow run (each step
logged once, the loss below 70% of its first value by the end), and evaluate the adapter, whose
answers take the trained format where the base model's do not. One scenario for both, because
each start of Ray Train or of an evaluation costs seconds of CPU here.

The SFT stage trains as the study did, on a folder in the layout of its training set
(``xuyige/CrossMath-Train``), built from the shared official sample by
``tests/study_fixture.py``: four of its puzzles are declared an evaluation set, so they must be
reported and left out, one record is defective, and the seven others are trained on with the
archives' own images, beside generated puzzles (``dataset=mixed``)."""

from __future__ import annotations

import json
import re
import sys

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from crossmath.finetuning.dataset import open_training_set
from crossmath.metrics.transcription import TRANSCRIBE, TRANSCRIBED
from crossmath.models.tiny import build_tiny_random
from crossmath.orchestration.story_plan import PROBE_MODALITIES, plan_story
from crossmath.story import main as story_main
from crossmath.story import parse_args, story
from tests.study_fixture import write_study_folder
from tests.support import joining, kill_after_first_checkpoint
from tests.test_transfer_main_job import write_mmmu


def plan(args):
    return plan_story(story(args))


def test_the_plan_evaluates_every_stage_alike_and_grpo_starts_from_the_sft_adapter(tmp_path):
    steps = plan(parse_args([
        "--model", "m", "--out", str(tmp_path), "--tasks", "mmmu-val=/data/MMMU",
        "mathverse-vision", "--eval", "data.n=5", "--train", "train.epochs=1",
        "--grpo", "grpo.steps=3"]))
    assert [step.name for step in steps] == [
        "evaluate base on crossmath", "evaluate base on mmmu-val",
        "evaluate base on mathverse-vision", "fine-tune (SFT)",
        "evaluate sft on crossmath", "evaluate sft on mmmu-val", "evaluate sft on mathverse-vision",
        "fine-tune (GRPO)",
        "evaluate grpo on crossmath", "evaluate grpo on mmmu-val",
        "evaluate grpo on mathverse-vision"]
    by_name = {step.name: step for step in steps}
    base = by_name["evaluate base on crossmath"].overrides
    assert f"modalities={PROBE_MODALITIES}" in base and "data.n=5" in base
    assert not any(o.startswith("model.adapter") for o in base)
    assert f"runs_dir={tmp_path / 'eval' / 'base'}" in base
    tuned = by_name["evaluate sft on mmmu-val"].overrides
    assert {"task=mmmu-val", "task.path=/data/MMMU", "model.name=m-sft",
            f"model.adapter={tmp_path / 'sft' / 'adapter'}"} <= set(tuned)
    assert not any(o.startswith("task.path") for o in by_name["evaluate sft on mathverse-vision"]
                   .overrides)  # no path: the Hub
    assert by_name["fine-tune (SFT)"].overrides[-2:] == (f"out_dir={tmp_path / 'sft'}",
                                                          "train.epochs=1")
    grpo = by_name["fine-tune (GRPO)"].overrides
    assert {"method=grpo", f"init_adapter={tmp_path / 'sft' / 'adapter'}",
            "grpo.steps=3"} <= set(grpo)
    assert f"model.adapter={tmp_path / 'grpo' / 'adapter'}" in \
        by_name["evaluate grpo on crossmath"].overrides
    mine = plan(parse_args(["--out", str(tmp_path), "--eval", "modalities=[text,image]"]))
    assert "modalities=[text,image]" in mine[0].overrides  # the user's choice wins
    assert not any(o.startswith("modalities") for o in plan(parse_args(
        ["--out", str(tmp_path), "--no-probe"]))[0].overrides)


@pytest.mark.slow
def test_the_story_killed_during_sft_resumes_and_runs_end_to_end_on_cpu(
        tmp_path, tmp_path_factory, ray_local, official_sample, tracking_db, capfd):
    models = tmp_path_factory.getbasetemp() / "models"
    build_tiny_random(models)
    study = write_study_folder(official_sample, tmp_path / "study")
    tracking = f"sqlite:///{tracking_db}"  # migrated already: the first step need not
    # every step joins the session's Ray, as on a cluster: seven Ray starts fewer
    common = [f"model.model.cache_dir={models}", f"mlflow.tracking_uri={tracking}",
              joining(ray_local)]
    out = tmp_path / "story"
    sft = out / "sft"
    # one transfer task: the plan above asks several alike, and each costs two more evaluations.
    # SFT on both sources (the study's set and generated puzzles, the tiny preset's 40) with the
    # CLI's two workers: enough steps for a checkpoint, a kill and a loss that falls
    argv = ["--model", "tiny-random", "--out", str(out),
            "--tasks", f"mmmu-val={write_mmmu(tmp_path)}",
            "--train", *common, "dataset=mixed", f"dataset.path={study.folder}",
            f"dataset.exclude_official={study.evaluation_jsonl}",
            "--eval", *common, "data.n=2", "styles=[original]", "samples=1", "model.sampling=greedy"]

    # 1. the story as a command, killed (SIGKILL, its steps with it) once its SFT step has
    #    committed a checkpoint and MLflow holds a step after it
    killed_at = kill_after_first_checkpoint(
        [sys.executable, "-m", "crossmath.story", *argv], tmp_path,
        sft / "ray" / "lora" / "checkpoint_manager_snapshot.json",
        logged_past=(tracking, sft, "train/loss"), joined=ray_local,
        timeout_s=600)  # two evaluations come first: only a guard against a hang
    assert not (sft / "adapter").exists(), "the killed story must not have finished its SFT"

    # 2. the same command again (in this process; its steps are still commands, each in its own
    #    process): the base evaluations are found done, SFT continues from its checkpoint
    status = story_main(argv)
    assert status == 0
    printed = capfd.readouterr().out  # the steps' output too: they print to this stdout
    asked_now = [int(n) for n in re.findall(r"requests \((\d+) run now", printed)]
    # the base evaluations asked nothing again; the SFT ones asked everything
    assert len(asked_now) == 4 and asked_now[:2] == [0, 0] and 0 not in asked_now[2:], printed
    assert f"(resumed from step {killed_at})" in printed and f"adapter: {sft / 'adapter'}" in printed
    assert killed_at >= 10  # the tiny preset's checkpoint_every

    # the study's set: the evaluation set's puzzles and the defective record left out, counted;
    # generated puzzles beside them
    manifest = json.loads((sft / "data" / "manifest.json").read_text())
    assert manifest["sources"]["crossmath-train"] | {"overlaps": 4, "defective": 1, "kept": 7} == \
        manifest["sources"]["crossmath-train"]
    assert manifest["sources"]["generated"]["n_puzzles"] == 40
    names = set(open_training_set(sft / "data").read(columns=["name"]).column("name").to_pylist())
    study_names = set(study.trained) | set(study.overlapping) | {study.defective}
    assert names & study_names == set(study.trained) and len(names) == 7 + 40

    # one training run across the kill, each step logged once, and it learned
    client = MlflowClient(tracking)
    (training,) = client.search_runs([client.get_experiment_by_name("crossmath-train").experiment_id])
    assert training.info.status == "FINISHED"
    assert training.data.tags["dataset_source"].startswith(f"crossmath-train:file://{study.folder} + generated:")
    assert len(training.data.tags["dataset_content_fingerprint"]) == 16
    assert {"train/loss", "train/lr", "train/tokens_per_s", "val/loss"} <= set(training.data.metrics)
    history = client.get_metric_history(training.info.run_id, "train/loss")
    final_step = max(m.step for m in history)
    assert f"trained {final_step} sft steps" in printed and final_step > killed_at
    assert sorted(m.step for m in history) == list(range(1, final_step + 1))  # once each
    losses = {m.step: m.value for m in history}
    assert sum(losses[s] for s in range(final_step - 2, final_step + 1)) / 3 < 0.7 * losses[1], losses
    artifacts = {a.path for a in client.list_artifacts(training.info.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in artifacts

    # each stage evaluated on CrossMath in its own folder, with the probe's two rounds (its own
    # transcription asked back as text) and its report: the adapter answers anew, in the
    # format it learned
    def outputs(stage: str) -> list[str]:
        (folder,) = (path.parent for path in (out / "eval" / stage).glob("*/*/*/predictions.parquet")
                     if "generated" in str(path))
        assert "Reading or reasoning" in (folder / "report.md").read_text(encoding="utf-8")
        predictions = pq.read_table(folder / "predictions.parquet").to_pylist()
        assert {p["modality"] for p in predictions} == {
            "text", "image", "hybrid", TRANSCRIBE, TRANSCRIBED}, predictions
        return [p["output"] for p in predictions if p["modality"] in ("text", "image", "hybrid")]
    tuned_outputs, base_outputs = outputs("sft"), outputs("base")
    assert tuned_outputs and all(o.startswith("<answer>") for o in tuned_outputs), tuned_outputs
    assert not any(o.startswith("<answer>") for o in base_outputs), base_outputs

    summary = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert [(s["stage"], s["model"]) for s in summary["stages"]] == [
        ("base", "tiny-random"), ("sft", "tiny-random-sft")]
    base, tuned = (s["numbers"] for s in summary["stages"])
    for numbers in (base, tuned):
        assert {"text/macro_acc", "image/macro_acc", "transcribed/macro_acc",
                "gap/T-I/macro_acc", "gap/T-That/macro_acc", "gap/That-I/macro_acc",
                "probe/cell_acc", "transfer/mmmu-val/rule/acc"} <= set(numbers)
        assert numbers["gap/T-That/macro_acc"] + numbers["gap/That-I/macro_acc"] == \
            numbers["gap/T-I/macro_acc"]
    assert summary["deltas"]["sft"]["transfer/mmmu-val/rule/acc"] == \
        tuned["transfer/mmmu-val/rule/acc"] - base["transfer/mmmu-val/rule/acc"]
    markdown = (out / "comparison.md").read_text(encoding="utf-8")
    assert "## CrossMath" in markdown and "## Transfer tasks" in markdown and "T − T̂" in markdown
    assert (sft / "adapter" / "adapter_config.json").is_file()

    experiment = client.get_experiment_by_name("crossmath")
    runs = client.search_runs([experiment.experiment_id])
    story = [run for run in runs if run.data.tags.get("kind") == "comparison"]
    assert len(story) == 1
    assert story[0].data.metrics["delta/sft/transfer/mmmu-val/rule/acc"] == \
        summary["deltas"]["sft"]["transfer/mmmu-val/rule/acc"]
    evaluated = {(run.data.tags["model"], run.data.tags["dataset"]) for run in runs
                 if "evaluation_id" in run.data.tags}
    assert evaluated == {(model, data) for model in ("tiny-random", "tiny-random-sft")
                         for data in ("generated-mixed-n2-seed0", "mmmu-val")}
    assert len(runs) == 5  # one per evaluation (none doubled by the rerun), and the comparison
