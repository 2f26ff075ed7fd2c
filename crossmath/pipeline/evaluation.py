"""The main job behind ``python -m crossmath.run``: one evaluation of one model, end to end.

Puzzles (generated or official) -> Ray Data pipeline (``dataflow``) -> predictions -> scorecard
-> files in ``out_dir`` and one MLflow run. Rerunning the same config resumes: requests with a
saved prediction are not run again.

``out_dir`` is a local folder or any location pyarrow writes to (``file://``, ``s3://``, a
shared mount). The result files are made in a local scratch folder, copied to ``out_dir`` and
logged to MLflow from there; the prediction shards go to ``out_dir`` as they are answered.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from omegaconf import DictConfig, OmegaConf

from crossmath.metrics.scorecard import Evaluation, evaluate_predictions
from crossmath.models.config import prompt_set_name
from crossmath.models.prompts import PromptTemplate, load_prompt_template
from crossmath.pipeline.dataflow import StageResources, run_pipeline
from crossmath.pipeline.preflight import check_run_config
from crossmath.pipeline.requests import RequestPlan
from crossmath.pipeline.shards import PredictionStore, local_path, publish_files, write_table
from crossmath.pipeline.sources import PuzzleSet, generated_puzzles, official_puzzles
from crossmath.puzzle.table import puzzles_to_table
from crossmath.runtime.ray_cluster import connect_ray
from crossmath.summary.views import write_report
from crossmath.tracking import mlflow_store as tracking

log = logging.getLogger(__name__)

# Set by the cluster job submitters (jobs/), whose uploaded working directory has no .git.
GIT_COMMIT_ENV = "CROSSMATH_GIT_COMMIT"


def load_puzzles(data: DictConfig, styles: list[str]) -> PuzzleSet:
    if data.kind == "generated":
        return generated_puzzles(data.n, data.difficulty, data.seed,
                                 OmegaConf.to_container(data.generator))
    if data.kind == "official":
        return official_puzzles(data.path, styles, limit=data.n, skip_flagged=data.skip_flagged,
                                cache_dir=data.cache_dir)
    raise ValueError(f"data.kind must be generated or official, not {data.kind!r}")


def prompt_set(model: DictConfig) -> PromptTemplate | None:
    """The prompt set the model's prompts are built from (None: a model shown no prompt)."""
    name = prompt_set_name(model)
    return None if name is None else load_prompt_template(name)


@dataclass
class RunOutcome:
    evaluation: Evaluation
    predictions: pa.Table
    out_dir: Path | str  # a Path when the results are on this machine, else their URI
    mlflow_run_id: str
    n_requests: int
    n_run_now: int


def run_evaluation(cfg: DictConfig) -> RunOutcome:
    """The whole job for one resolved config: what ``python -m crossmath.run`` does."""
    check_run_config(cfg)
    puzzle_set = load_puzzles(cfg.data, list(cfg.styles))
    for line in puzzle_set.flagged:
        log.warning("skipped flagged record %s", line)
    plan = RequestPlan(list(cfg.modalities), list(cfg.styles), cfg.samples, prompt_set(cfg.model),
                       cfg.model.name)
    if cfg.ray.address and "://" not in cfg.out_dir and not Path(cfg.out_dir).is_absolute():
        log.warning("out_dir %s is relative: on a cluster it lands in this job's scratch folder; "
                    "give a shared path or a URI such as s3://bucket/folder", cfg.out_dir)
    store = PredictionStore(cfg.out_dir)
    connect_ray(cfg.ray)
    model_config = OmegaConf.to_container(cfg.model, resolve=True)
    result = run_pipeline(puzzle_set, plan, model_config, store,
                          StageResources(**OmegaConf.to_container(cfg.resources)))

    puzzles = puzzles_to_table(puzzle_set.puzzles)
    evaluation = evaluate_predictions(result.predictions, puzzles, samples=cfg.samples)
    with tempfile.TemporaryDirectory(prefix="crossmath-results-") as scratch:
        files = _write_results(Path(scratch), evaluation, result.predictions, puzzles, cfg.model.name)
        publish_files(files, store.root)
        run_id = tracking.log_run(
            tracking_uri=cfg.mlflow.tracking_uri,
            experiment=cfg.mlflow.experiment,
            run_name=cfg.mlflow.run_name or f"{cfg.model.name}/{cfg.data.name}",
            params=OmegaConf.to_container(cfg, resolve=True),
            tags={"model": cfg.model.name, "prompt_id": plan.prompt_id,
                  "git_commit": os.environ.get(GIT_COMMIT_ENV) or tracking.git_commit(),
                  "dataset": cfg.data.name, "dataset_fingerprint": puzzle_set.fingerprint,
                  "n_requests": str(result.n_requests), "out_dir": store.root},
            metrics=evaluation.flat_metrics(cfg.model.name),
            artifacts=files,
        )
    return RunOutcome(evaluation, result.predictions, local_path(store.root) or store.root, run_id,
                      result.n_requests, result.n_pending)


def _write_results(folder: Path, evaluation: Evaluation, predictions: pa.Table, puzzles: pa.Table,
                   model: str) -> list[Path]:
    """predictions, puzzles, metrics and the report of one run, as files in ``folder``."""
    write_table(predictions, str(folder / "predictions.parquet"))
    write_table(puzzles, str(folder / "puzzles.parquet"))
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps(evaluation.to_dict(), indent=1), encoding="utf-8")
    report = write_report(evaluation, folder, model=model)
    return [folder / "predictions.parquet", folder / "puzzles.parquet", metrics, *report.paths]
