"""A story's results: each evaluation's scores read back and gathered by stage, and the
comparison of the stages published (files and an MLflow run)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from crossmath.orchestration.story_plan import Step
from crossmath.pipeline.shards import read_text
from crossmath.summary.stages import StageComparison, StageResults
from crossmath.tasks import get_task
from crossmath.tracking import mlflow_store as tracking


@dataclass(frozen=True)
class Evaluated:
    """Where an evaluation step wrote its results, and the name of the model it evaluated."""

    step: Step
    folder: str
    model: str


def stage_results(evaluated: Iterable[Evaluated], incomplete: set[str]) -> list[StageResults]:
    """Every evaluation's scores read from its ``metrics.json``, gathered by stage (in the
    order of the steps); ``incomplete`` names the steps that finished with failed requests."""
    stages: dict[str, dict] = {}
    for done in evaluated:
        step = done.step
        text = read_text(f"{done.folder}/metrics.json")
        if text is None:
            raise FileNotFoundError(f"{step.name}: no metrics.json in {done.folder}")
        found = stages.setdefault(step.stage, {"model": done.model, "scores": {},
                                               "incomplete": []})
        found["scores"][step.task] = get_task(step.task).scores(json.loads(text))
        if step.name in incomplete:
            found["incomplete"].append(step.task)
    return [StageResults.of(stage, s["model"], s["scores"], s["incomplete"])
            for stage, s in stages.items()]


def publish(comparison: StageComparison, out: Path, *, tracking_uri: str, experiment: str,
            model: str) -> str:
    """``comparison.md`` and ``comparison.json`` in ``out``, and an MLflow run of them in the
    evaluations' experiment; returns the run id."""
    out.mkdir(parents=True, exist_ok=True)
    markdown, summary = out / "comparison.md", out / "comparison.json"
    markdown.write_text(comparison.markdown(), encoding="utf-8")
    summary.write_text(json.dumps(comparison.to_dict(), indent=1), encoding="utf-8")
    run_id = tracking.open_run(
        tracking_uri=tracking_uri, experiment=experiment, run_name=f"{model}/finetune-story",
        params={"stages": [stage.stage for stage in comparison.stages], "out": str(out)},
        tags={"kind": "comparison", "model": model})
    tracking.log_step_metrics(tracking_uri, run_id, comparison.flat_metrics(), step=0)
    tracking.close_run(tracking_uri, run_id, artifacts=[markdown, summary])
    return run_id
