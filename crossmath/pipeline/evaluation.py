"""The main job behind ``python -m crossmath.run``: one evaluation of one model, end to end.

Before any model loads or Ray starts, the run knows what it is: the puzzles, the prompt set,
the backend's and every request's identity, hence the evaluation's identity (``identity``).
It claims the evaluation's results folder (``results_folder``) and opens the evaluation's
MLflow run, which checks that the tracking store answers. Then the Ray Data pipeline
(``dataflow``) answers the pending requests, the predictions are scored, and the files are
written to the results folder and logged to the run.

Rerunning the same command is the same evaluation: same folder, same MLflow run, answered
requests not asked again, failed ones tried again (up to ``max_attempts``). Anything that
shapes a prediction changed is another evaluation, with its own folder and run.

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
from typing import Any, Mapping

import pyarrow as pa
from omegaconf import DictConfig, OmegaConf

from crossmath.metrics.scorecard import Evaluation, evaluate_predictions
from crossmath.models.config import decodes_greedily, prompt_set_name
from crossmath.models.prompts import PromptSet, load_prompt_template
from crossmath.pipeline.dataflow import StageResources, run_pipeline
from crossmath.pipeline.failures import FailureReport, count_failures
from crossmath.pipeline.fingerprints import digest
from crossmath.pipeline.identity import (
    BackendIdentity,
    backend_identity,
    data_identity,
    prompts_identity,
)
from crossmath.pipeline.preflight import check_run_config
from crossmath.pipeline.requests import RequestPlan
from crossmath.pipeline.results_folder import (
    MANIFEST_FILE,
    SHORT_ID,
    Manifest,
    claim_results_folder,
    default_out_dir,
    record_mlflow_run,
)
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


def prompt_set(model_config: Mapping[str, Any]) -> PromptSet | None:
    """The prompt set the model's prompts are built from (None: a model shown no prompt)."""
    name = prompt_set_name(model_config)
    return None if name is None else load_prompt_template(name)


def effective_samples(samples: int, model_config: Mapping[str, Any],
                      checkpoint: Path | None) -> int:
    """``samples``, or 1 (with a warning) for a model whose samples would all be the same."""
    generation_file = checkpoint / "generation_config.json" if checkpoint else None
    generation = (json.loads(generation_file.read_text(encoding="utf-8"))
                  if generation_file is not None and generation_file.is_file() else None)
    if samples > 1 and decodes_greedily(model_config, generation):
        log.warning("%s decodes greedily: its %d samples of each request would be copies of one "
                    "answer; running 1 sample (set samples=1 to silence this)",
                    model_config.get("name"), samples)
        return 1
    return samples


@dataclass
class RunOutcome:
    evaluation: Evaluation
    predictions: pa.Table
    failures: FailureReport
    out_dir: Path | str  # a Path when the results are on this machine, else their URI
    evaluation_id: str
    mlflow_run_id: str
    n_requests: int
    n_run_now: int

    @property
    def complete(self) -> bool:
        return self.failures.complete


def run_evaluation(cfg: DictConfig) -> RunOutcome:
    """The whole job for one resolved config: what ``python -m crossmath.run`` does."""
    check_run_config(cfg)
    puzzle_set = load_puzzles(cfg.data, list(cfg.styles))
    for line in puzzle_set.flagged:
        log.warning("skipped flagged record %s", line)
    model_config = OmegaConf.to_container(cfg.model, resolve=True)
    backend = backend_identity(model_config, cfg.resources.infer_gpus)
    samples = effective_samples(cfg.samples, model_config, backend.checkpoint)
    plan = RequestPlan(list(cfg.modalities), list(cfg.styles), samples, prompt_set(model_config),
                       backend.id, cfg.max_attempts)
    settings = _evaluation_settings(backend, cfg.data.name, puzzle_set, plan)
    evaluation_id = digest(settings)
    out_dir = cfg.out_dir or default_out_dir(cfg.runs_dir, cfg.model.name, cfg.data.name,
                                             evaluation_id)
    if cfg.ray.address and "://" not in out_dir and not Path(out_dir).is_absolute():
        log.warning("out_dir %s is relative: on a cluster it lands in this job's scratch folder; "
                    "give a shared path or a URI such as s3://bucket/folder", out_dir)
    store = PredictionStore(out_dir)
    manifest = claim_results_folder(
        store, Manifest(evaluation_id, cfg.model.name, cfg.data.name, settings))
    run_id = tracking.open_evaluation_run(
        tracking_uri=cfg.mlflow.tracking_uri,
        experiment=cfg.mlflow.experiment,
        evaluation_id=evaluation_id,
        run_name=cfg.mlflow.run_name or f"{cfg.model.name}/{cfg.data.name}/{evaluation_id[:SHORT_ID]}",
        params={**OmegaConf.to_container(cfg, resolve=True), "samples": samples},
        tags={"model": cfg.model.name, "prompt_id": plan.prompt_id, "dataset": cfg.data.name,
              "dataset_fingerprint": puzzle_set.fingerprint, "backend_id": backend.id},
    )
    manifest = record_mlflow_run(store, manifest, run_id)
    log.info("evaluation %s: results in %s, MLflow run %s", evaluation_id[:SHORT_ID], store.root,
             run_id)
    try:
        connect_ray(cfg.ray)
        result = run_pipeline(puzzle_set, plan, model_config, store,
                              StageResources(**OmegaConf.to_container(cfg.resources)))
        puzzles = puzzles_to_table(puzzle_set.puzzles)
        evaluation = evaluate_predictions(result.predictions, puzzles, samples=samples)
        failures = count_failures(result.predictions, cfg.max_attempts)
        with tempfile.TemporaryDirectory(prefix="crossmath-results-") as scratch:
            files = _write_results(Path(scratch), evaluation, failures, result.predictions,
                                   puzzles, cfg.model.name)
            publish_files(files, store.root)
            tracking.finish_evaluation_run(
                cfg.mlflow.tracking_uri, run_id,
                metrics={**evaluation.flat_metrics(cfg.model.name), **failures.flat_metrics()},
                tags={tracking.INCOMPLETE_TAG: str(not failures.complete).lower(),
                      "git_commit": os.environ.get(GIT_COMMIT_ENV) or tracking.git_commit(),
                      "n_requests": str(result.n_requests), "out_dir": store.root},
                artifacts=[*files, _manifest_copy(Path(scratch), manifest)],
            )
    except BaseException as error:
        _close_failed_run(cfg.mlflow.tracking_uri, run_id, error)
        raise
    return RunOutcome(evaluation, result.predictions, failures,
                      local_path(store.root) or store.root, evaluation_id, run_id,
                      result.n_requests, result.n_pending)


def _evaluation_settings(backend: BackendIdentity, data_name: str, puzzle_set: PuzzleSet,
                         plan: RequestPlan) -> dict[str, Any]:
    """Everything an evaluation's identity hashes (see ``identity``), as its manifest shows it."""
    release_folders = {str(Path(path).resolve().parent)
                       for path in puzzle_set.official_images.values()}
    return {
        "backend": backend.settings,
        "data": {"name": data_name, "gold": data_identity(puzzle_set.puzzles),
                 "release_images": sorted(release_folders)},
        "plan": {"modalities": list(plan.modalities), "styles": plan.style_provenance,
                 "samples": plan.samples, "prompt_set": plan.prompt_id,
                 "prompts": prompts_identity(plan.layout(puzzle, modality).texts
                                             for puzzle in puzzle_set.puzzles
                                             for modality in plan.modalities)},
    }


def _write_results(folder: Path, evaluation: Evaluation, failures: FailureReport,
                   predictions: pa.Table, puzzles: pa.Table, model: str) -> list[Path]:
    """predictions, puzzles, metrics (with the failures) and the report, as files in ``folder``."""
    write_table(predictions, str(folder / "predictions.parquet"))
    write_table(puzzles, str(folder / "puzzles.parquet"))
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps({**evaluation.to_dict(), "failures": failures.to_dict()},
                                  indent=1), encoding="utf-8")
    report = write_report(evaluation, folder, model=model)
    return [folder / "predictions.parquet", folder / "puzzles.parquet", metrics, *report.paths]


def _manifest_copy(folder: Path, manifest: Manifest) -> Path:
    path = folder / MANIFEST_FILE
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


def _close_failed_run(tracking_uri: str, run_id: str, error: BaseException) -> None:
    """Mark the run FAILED (KILLED on Ctrl-C); a tracking store that fails too is only logged,
    so that the error that stopped the run is the one reported."""
    status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
    try:
        tracking.close_run(tracking_uri, run_id, status=status)
    except Exception as close_error:
        log.warning("could not mark MLflow run %s %s: %s", run_id, status, close_error)
