"""MLflow: the only module that imports it.

One MLflow run per evaluation: the resolved config as params, tags that identify what was run,
the flat metrics, and the run's files as artifacts. Tracking URIs and artifact locations are
made absolute, since MLflow resolves relative ones against whatever the working directory
was when the experiment was created.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import mlflow
from mlflow.tracking import MlflowClient

MAX_PARAM_LENGTH = 6000


def git_commit(cwd: Path | None = None) -> str:
    cwd = cwd or Path(__file__).resolve().parent
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
        artifact_location = (database.parent / "mlartifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


def log_run(*, tracking_uri: str, experiment: str, run_name: str | None, params: Mapping[str, Any],
            tags: Mapping[str, str], metrics: Mapping[str, float], artifacts: Iterable[Path]) -> str:
    """Log one finished evaluation as an MLflow run; returns the run id."""
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = _experiment_id(tracking_uri, experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.log_params(flatten(params))
        mlflow.set_tags(dict(tags))
        mlflow.log_metrics({name: float(value) for name, value in metrics.items()})
        for path in artifacts:
            mlflow.log_artifact(str(path))
        return run.info.run_id


def run_artifact_files(tracking_uri: str, experiment: str, artifact: str) -> list[tuple[str, str, Path]]:
    """(run id, run name, local copy of ``artifact``) of every finished run that has it, oldest first."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no MLflow experiment {experiment!r} at {tracking_uri}")
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
    files = []
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        if artifact not in {f.path for f in client.list_artifacts(run.info.run_id)}:
            continue
        local = client.download_artifacts(run.info.run_id, artifact)
        files.append((run.info.run_id, run.info.run_name, Path(local)))
    return files


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
    run = client.create_run(_experiment_id(tracking_uri, experiment), run_name=run_name,
                            tags=dict(tags))
    flat = flatten(params)
    names = list(flat)
    for start in range(0, len(names), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run.info.run_id, params=[
            mlflow.entities.Param(name, flat[name]) for name in names[start:start + 100]])
    return run.info.run_id


def log_step_metrics(tracking_uri: str, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    """Metrics of one training step into an open run."""
    now = int(time.time() * 1000)
    MlflowClient(tracking_uri).log_batch(run_id, metrics=[
        mlflow.entities.Metric(name, float(value), now, step) for name, value in metrics.items()])


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
