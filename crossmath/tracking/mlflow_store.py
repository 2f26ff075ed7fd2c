"""MLflow: the only module that imports it.

One MLflow run per evaluation, however often it is resumed: the run is found again by the tag
``evaluation_id``, reopened, and gets the latest metrics and files each time. It holds the
resolved config as params (logged when the run is created), tags that identify what was run,
the flat metrics, and the run's files as artifacts. Tracking URIs and artifact locations are
made absolute, since MLflow resolves relative ones against whatever the working directory
was when the experiment was created.

An evaluation's run is opened before any model loads, with a short timeout and no retries, so
that an unreachable tracking server is reported within seconds (``TrackingUnavailable``), not
after the inference.
"""

from __future__ import annotations

import difflib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import mlflow
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE

from crossmath.runtime.provenance import git_commit  # noqa: F401 - part of this module's API
from crossmath.tracking.errors import TrackingUnavailable, UnknownExperiment  # noqa: F401
from crossmath.tracking.run_labels import command_line, command_name
from crossmath.tracking.ui_view import VIEW_TAG, view_tag_value

MAX_PARAM_LENGTH = 6000
MAX_BATCH_PARAMS = 100  # MLflow's limits per log_batch call
MAX_BATCH_METRICS = 1000
EVALUATION_TAG = "evaluation_id"
INCOMPLETE_TAG = "incomplete"
END_CAUSE_TAG = "end_cause"  # why a run ended other than FINISHED
COMMAND_TAG = "command"
# The UI opens an experiment of this kind on its runs table (without a kind it may open on the
# GenAI traces overview).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
CHECK_TIMEOUT_S = 10


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``a.b.c`` params (lists as JSON), cut to MLflow's length limit."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
            flat[name] = text[:MAX_PARAM_LENGTH]
    return flat


def _experiment_id(tracking_uri: str, name: str) -> str:
    """The experiment's id, created if need be, with its kind (an experiment without one gets
    ours; a kind someone chose is left alone) and crossmath's saved view (``ui_view``)."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        wanted = {VIEW_TAG: view_tag_value(),
                  EXPERIMENT_KIND_TAG: experiment.tags.get(EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)}
        for key, value in wanted.items():
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
        artifact_location = (database.parent / "mlartifacts" / name).as_uri()
    return client.create_experiment(
        name, artifact_location=artifact_location,
        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, VIEW_TAG: view_tag_value()})


@contextmanager
def fail_fast() -> Iterator[None]:
    """MLflow's HTTP calls inside: one attempt each, ``CHECK_TIMEOUT_S`` at most (MLflow reads
    these variables at every request)."""
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": str(CHECK_TIMEOUT_S)}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def open_evaluation_run(*, tracking_uri: str, experiment: str, evaluation_id: str,
                        run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
    """The run of one evaluation, reopened when it exists (a resumed evaluation: renamed
    ``run_name`` and given ``tags`` again), created with ``params`` and ``tags`` otherwise;
    returns its id.

    Raises ``TrackingUnavailable`` within seconds when the store does not answer.
    """
    try:
        with fail_fast():
            client = MlflowClient(tracking_uri)
            experiment_id = _experiment_id(tracking_uri, experiment)
            found = client.search_runs(
                [experiment_id], filter_string=f"tags.{EVALUATION_TAG} = '{evaluation_id}'",
                order_by=["attributes.start_time DESC"], max_results=1)
            if found:
                run_id = found[0].info.run_id
                client.update_run(run_id, status="RUNNING", name=run_name)
                if END_CAUSE_TAG in found[0].data.tags:  # how it ended before no longer holds
                    client.delete_tag(run_id, END_CAUSE_TAG)
                client.log_batch(run_id, tags=[mlflow.entities.RunTag(name, value)
                                               for name, value in tags.items()])
                return run_id
            return _create_run(client, experiment_id, run_name, params,
                               {**tags, EVALUATION_TAG: evaluation_id})
    except Exception as error:  # connection refused, timeout, bad URI, unwritable database
        reason = " ".join(str(error).split())[:300]
        raise TrackingUnavailable(
            f"MLflow tracking store {tracking_uri} is not usable ({type(error).__name__}: "
            f"{reason}); start it, or point mlflow.tracking_uri at one that is") from None


def finish_evaluation_run(tracking_uri: str, run_id: str, *, metrics: Mapping[str, float],
                          tags: Mapping[str, str], artifacts: Iterable[Path]) -> None:
    """An evaluation's latest metrics, tags and files into its run, which is then closed."""
    MlflowClient(tracking_uri).log_batch(
        run_id, tags=[mlflow.entities.RunTag(name, value) for name, value in tags.items()])
    log_step_metrics(tracking_uri, run_id, metrics, step=0)
    close_run(tracking_uri, run_id, artifacts=artifacts)


@dataclass(frozen=True)
class EvaluationRun:
    """A finished evaluation's run, with a local copy of its ``metrics.json``."""

    run_id: str
    run_name: str
    evaluation_id: str
    incomplete: bool
    metrics_file: Path
    params: Mapping[str, str] = field(default_factory=dict)  # the resolved config, flattened


def evaluation_runs(tracking_uri: str, experiment: str,
                    artifact: str = "metrics.json") -> list[EvaluationRun]:
    """One entry per evaluation (its latest finished run that holds ``artifact``), oldest
    first; runs without it (trainings) are left out."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        close = difflib.get_close_matches(experiment, names, n=3, cutoff=0.5)
        raise UnknownExperiment(
            f"no experiment {experiment!r} at {tracking_uri}; "
            + (f"closest: {', '.join(close)}; " if close else "")
            + (f"it holds {', '.join(names)}" if names else "it holds none yet"))
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
    latest: dict[str, EvaluationRun] = {}
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        if artifact not in {f.path for f in client.list_artifacts(run.info.run_id)}:
            continue
        evaluation_id = run.data.tags.get(EVALUATION_TAG, run.info.run_id)
        latest.pop(evaluation_id, None)  # a later run of the same evaluation replaces it
        latest[evaluation_id] = EvaluationRun(
            run.info.run_id, run.info.run_name, evaluation_id,
            run.data.tags.get(INCOMPLETE_TAG) == "true",
            Path(client.download_artifacts(run.info.run_id, artifact)), dict(run.data.params))
    return list(latest.values())


def open_run(*, tracking_uri: str, experiment: str, run_name: str | None, params: Mapping[str, Any],
             tags: Mapping[str, str], run_id: str | None = None) -> str:
    """A run left open for metrics logged as they come (training); returns its id.

    With ``run_id`` of a run that exists (a resumed training), that run is reopened instead, so
    one training keeps one run across restarts; its params are not logged again.
    """
    client = MlflowClient(tracking_uri)
    if run_id is not None:
        try:
            client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            run_id = None
        else:
            client.update_run(run_id, status="RUNNING")
            return run_id
    return _create_run(client, _experiment_id(tracking_uri, experiment), run_name, params, tags)


def _create_run(client: MlflowClient, experiment_id: str, run_name: str | None,
                params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={**command_tags(), **tags})
    flat = flatten(params)
    names = list(flat)
    for start in range(0, len(names), MAX_BATCH_PARAMS):
        client.log_batch(run.info.run_id, params=[
            mlflow.entities.Param(name, flat[name])
            for name in names[start:start + MAX_BATCH_PARAMS]])
    return run.info.run_id


def command_tags() -> dict[str, str]:
    """What MLflow's own runs record of where they come from (user, source, git commit), with
    the command as the source (``crossmath.run``: the runs table's Source column) and the
    whole command line in the tag ``command``."""
    return resolve_tags({MLFLOW_SOURCE_NAME: command_name(), MLFLOW_SOURCE_TYPE: "LOCAL",
                         COMMAND_TAG: command_line()})


def log_step_metrics(tracking_uri: str, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    """Metrics of one step (a training step; 0 for an evaluation's results) into an open run."""
    now = int(time.time() * 1000)
    entries = [mlflow.entities.Metric(name, float(value), now, step)
               for name, value in metrics.items()]
    client = MlflowClient(tracking_uri)
    for start in range(0, len(entries), MAX_BATCH_METRICS):
        client.log_batch(run_id, metrics=entries[start:start + MAX_BATCH_METRICS])


def last_logged_steps(tracking_uri: str, run_id: str) -> dict[str, int]:
    """For each metric of a run, the last step it holds (a resumed training skips up to it)."""
    client = MlflowClient(tracking_uri)
    return {name: max(m.step for m in client.get_metric_history(run_id, name))
            for name in client.get_run(run_id).data.metrics}


def close_run(tracking_uri: str, run_id: str, *, artifacts: Iterable[Path] = (),
              status: str = "FINISHED") -> None:
    """Attach files or folders to an open run and mark it finished (or FAILED, KILLED)."""
    client = MlflowClient(tracking_uri)
    for path in artifacts:
        if Path(path).is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=Path(path).name)
        else:
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status=status)
