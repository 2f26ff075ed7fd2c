"""The main job behind ``python -m crossmath.run``: one evaluation of one model, end to end.

Before any model loads or Ray starts, the run knows what it is (``plan_evaluation``): what it
asks (the ``Questions`` of the task ``task`` names, from the registry ``crossmath.tasks``:
CrossMath puzzles, with the perception probe when ``transcribe`` is among the modalities, or a
transfer task's items), the prompt set, the backend's and every request's identity, hence the
evaluation's identity (``identity``). It
claims the evaluation's results folder (``results_folder``) and opens the evaluation's MLflow
run, which checks that the tracking store answers. Then the Ray Data pipeline (``dataflow``)
answers the pending requests, round by round (the probe's second round is planned from the
first one's transcriptions; MathVerse's judge rounds, asked of the judge model, from the
replies), the predictions are scored, and the files are written to the
results folder and logged to the run.

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
from typing import Any, Callable, Mapping

import pyarrow as pa

from crossmath.core.fingerprints import digest
from crossmath.metrics.scorecard import Evaluation
from crossmath.models.contract import decodes_greedily
from crossmath.pipeline.dataflow import run_pipeline
from crossmath.pipeline.failures import FailureReport, count_failures
from crossmath.pipeline.identity import BackendIdentity, backend_identity
from crossmath.pipeline.refresh import results_current, results_digest, stamp_results
from crossmath.pipeline.results_folder import (
    MANIFEST_FILE,
    Manifest,
    claim_results_folder,
    default_out_dir,
)
from crossmath.pipeline.run_record import (
    EvaluationRunRecord,
    evaluation_model_label,
    evaluation_run_name,
)
from crossmath.pipeline.shards import (
    PREDICTION_SCHEMA,
    PredictionStore,
    local_path,
    publish_files,
    write_table,
)
from crossmath.runtime.provenance import git_commit
from crossmath.runtime.ray_cluster import connect_ray, join_cluster
from crossmath.settings.run import RunSettings
from crossmath.summary.score_views import write_report
from crossmath.tasks import get_task
from crossmath.tasks.questions import PROMPT_SET, AskContext, Questions, Scores

log = logging.getLogger(__name__)

# Set by the cluster job submitters (jobs/), whose uploaded working directory has no .git.
GIT_COMMIT_ENV = "CROSSMATH_GIT_COMMIT"


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
    scores: Scores
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

    @property
    def evaluation(self) -> Evaluation:
        """The CrossMath scorecard (a transfer task's evaluation has tallies instead)."""
        evaluation = getattr(self.scores, "evaluation", None)
        if not isinstance(evaluation, Evaluation):
            raise AttributeError("a transfer task's evaluation has no CrossMath scorecard; "
                                 "see its scores")
        return evaluation


@dataclass(frozen=True)
class PlannedEvaluation:
    """An evaluation as known before anything runs: what it asks of which backend, its
    identity and the folder its results go to."""

    questions: Questions
    model_config: dict[str, Any]
    backend: BackendIdentity
    samples: int
    settings: dict[str, Any]  # everything the evaluation id hashes, as the manifest shows it
    evaluation_id: str
    out_dir: str


def run_settings(settings: RunSettings | Mapping[str, Any]) -> RunSettings:
    """``settings``, read from a composed ``conf/run.yaml`` when given one (Python callers;
    the command reads its config at the door, ``crossmath.run``)."""
    return settings if isinstance(settings, RunSettings) else RunSettings.from_config(settings)


def plan_evaluation(settings: RunSettings | Mapping[str, Any]) -> PlannedEvaluation:
    """What ``settings`` would evaluate and where its results go; loads no model, starts no
    Ray."""
    settings = run_settings(settings)
    model_config = settings.model
    backend = backend_identity(model_config, settings.resources.infer_gpus, settings.adapter)
    samples = effective_samples(settings.samples, model_config, backend.checkpoint)
    questions = ask(settings, backend, samples)
    hashed = {"backend": backend.settings, **questions.settings()}
    evaluation_id = digest(hashed)
    out_dir = settings.out_dir or default_out_dir(settings.runs_dir, settings.model_name,
                                                  questions.data_name, evaluation_id)
    return PlannedEvaluation(questions, model_config, backend, samples, hashed, evaluation_id,
                             out_dir)


def ask(settings: RunSettings, backend: BackendIdentity, samples: int) -> Questions:
    """The questions of the task ``settings`` names (``crossmath.tasks.get_task``), given the
    run options it reads (CrossMath: ``data``, ``modalities``, ``styles`` and the model's prompt
    set, the styles and prompt set as resolved at the door) and a way to identify another model
    it asks (a judge)."""
    task = get_task(settings.task_name)
    gpus = settings.resources.infer_gpus
    return task.questions(AskContext(
        options=settings.task,
        run={key: settings.config[key] for key in task.reads - {PROMPT_SET}},
        samples=samples, backend_id=backend.id, styles=settings.styles,
        prompt_set=settings.prompt_set if PROMPT_SET in task.reads else None,
        identify=lambda config: backend_identity(config, gpus)))


def run_evaluation(settings: RunSettings | Mapping[str, Any]) -> RunOutcome:
    """The whole job for one evaluation's settings: what ``python -m crossmath.run`` does."""
    settings = run_settings(settings)
    join_cluster(settings.ray)  # an unreachable cluster stops here, before anything else
    planned = plan_evaluation(settings)
    questions, evaluation_id = planned.questions, planned.evaluation_id
    _warn_if_node_local(settings)
    store = PredictionStore(planned.out_dir)
    manifest = claim_results_folder(
        store, Manifest(evaluation_id, settings.model_name, questions.data_name,
                        planned.settings))
    model = evaluation_model_label(planned.model_config, planned.backend.settings)
    record = EvaluationRunRecord(
        settings.mlflow, store, manifest, questions, model=model,
        run_name=(settings.mlflow.get("run_name")
                  or evaluation_run_name(model, questions, evaluation_id)),
        params={**settings.config, "samples": planned.samples},
        tags={"model": settings.model_name, "prompt_id": questions.prompt_id,
              **questions.tags(), "backend_id": planned.backend.id})

    def start_work() -> None:  # MLflow first: an unusable store stops the run before Ray
        record.open()
        connect_ray(settings.ray)

    try:
        predictions, n_requests, n_run_now = _answer_rounds(
            planned, store, settings, start_work)
        scores = questions.score(predictions)
        failures = count_failures(predictions, settings.max_attempts)
        commit = os.environ.get(GIT_COMMIT_ENV)
        digest = results_digest(predictions, tracking_uri=record.tracking_uri,
                                experiment=record.experiment, commit=commit)
        if not (n_run_now == 0 and results_current(store.root, digest)):
            with tempfile.TemporaryDirectory(prefix="crossmath-results-") as scratch:
                files = _write_results(Path(scratch), scores, failures, predictions, questions,
                                       settings.model_name)
                publish_files(files, store.root)
                run_id = record.open()
                record.finish(
                    scores=scores, predictions=predictions, failures=failures,
                    model_name=settings.model_name,
                    tags={"git_commit": commit or git_commit(), "n_requests": str(n_requests),
                          "out_dir": store.root},
                    artifacts=[*files, _manifest_copy(Path(scratch), record.manifest)])
            stamp_results(store.root, digest, run_id)
    except BaseException as error:
        record.ended(error)
        raise
    finally:
        record.close()
    return RunOutcome(scores, predictions, failures, local_path(store.root) or store.root,
                      evaluation_id, record.run_id or record.manifest.mlflow_run_id or "",
                      n_requests, n_run_now)


def _answer_rounds(planned: PlannedEvaluation, store: PredictionStore, settings: RunSettings,
                   start_work: Callable[[], object]) -> tuple[pa.Table, int, int]:
    """Every round's predictions (request_id order), the number of requests and how many of
    them were asked now; ``start_work`` (MLflow, Ray) runs only if some request is pending."""
    questions = planned.questions
    answered = PREDICTION_SCHEMA.empty_table()
    n_requests = n_run_now = 0
    for round_index in range(questions.n_rounds):
        units = questions.units(round_index, answered)
        if not units:
            continue
        model_config, prompt_id = (questions.round_backend(round_index)
                                   or (planned.model_config, questions.prompt_id))
        result = run_pipeline(units, model_config, store, settings.resources,
                              prompt_id=prompt_id, max_attempts=settings.max_attempts,
                              before_work=start_work, styles=settings.styles,
                              follow_ups=questions.follow_ups(round_index))
        answered = pa.concat_tables([answered, result.predictions])
        n_requests += result.n_requests
        n_run_now += result.n_pending + result.n_followed_up
    return answered.sort_by("request_id"), n_requests, n_run_now


def _write_results(folder: Path, scores: Scores, failures: FailureReport, predictions: pa.Table,
                   questions: Questions, model: str) -> list[Path]:
    """predictions, what they were scored against, metrics (with the failures) and the
    report, as files in ``folder``."""
    write_table(predictions, str(folder / "predictions.parquet"))
    reference = questions.reference()
    write_table(reference.table, str(folder / reference.name))
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps({**scores.to_dict(), "failures": failures.to_dict()},
                                  indent=1), encoding="utf-8")
    report = write_report(scores, folder, model)
    return [folder / "predictions.parquet", folder / reference.name, metrics, *report]


def _manifest_copy(folder: Path, manifest: Manifest) -> Path:
    path = folder / MANIFEST_FILE
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


def _warn_if_node_local(settings: RunSettings) -> None:
    """On a cluster, a relative results folder lands in this job's scratch folder: say which
    option made it so (``out_dir`` when given, else ``runs_dir``)."""
    if not settings.ray.get("address"):
        return
    option, folder = (("out_dir", settings.out_dir) if settings.out_dir
                      else ("runs_dir", settings.runs_dir))
    if "://" not in folder and not Path(folder).is_absolute():
        log.warning("%s %s is relative: on a cluster it lands in this job's scratch folder; "
                    "give a shared path or a URI such as s3://bucket/folder", option, folder)
