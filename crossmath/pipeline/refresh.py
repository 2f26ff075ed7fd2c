"""Whether an evaluation's results are already written and logged for its predictions.

A resumed evaluation with nothing left to ask has the predictions of the run that wrote its
results: its scores, report, plots and MLflow artifacts would come out the same. So once every
file is written and logged, the results folder gets a stamp, ``results_logged.json``: a digest
of what made the results (each request's id and latest attempt, the scoring code, the MLflow
store and experiment they were logged to). A later run whose digest matches the stamp prints
its summary from the predictions on disk and stops there, without starting Ray, loading a model
or opening MLflow: seconds. Anything else (a new answer, a retried failure, another tracking
store, a newer crossmath, a stamp missing because the last run stopped before the end) writes
and logs everything again.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from crossmath import __version__
from crossmath.pipeline.shards import read_text, write_text
from crossmath.runtime.provenance import git_commit

STAMP_FILE = "results_logged.json"


def results_digest(predictions: pa.Table, *, tracking_uri: str, experiment: str,
                   commit: str | None = None) -> str:
    """What the results of ``predictions`` depend on: every request's id and latest attempt
    (a prediction is never rewritten under the same attempt), the code, where they are logged."""
    code = f"{__version__}/{commit or git_commit()}"
    digest = hashlib.sha256(f"{code}\x00{tracking_uri}\x00{experiment}\x00".encode())
    for request_id, attempt in zip(predictions.column("request_id").to_pylist(),
                                   predictions.column("attempt").to_pylist()):
        digest.update(f"{request_id}\x00{attempt}\x01".encode())
    return digest.hexdigest()[:24]


def results_current(results_root: str, digest: str) -> bool:
    """Whether the folder's stamp says its results (files and MLflow run) are ``digest``'s."""
    text = read_text(f"{results_root}/{STAMP_FILE}")
    try:
        return text is not None and json.loads(text).get("digest") == digest
    except (json.JSONDecodeError, AttributeError):
        return False


def stamp_results(results_root: str, digest: str, mlflow_run_id: str) -> None:
    """Mark the results as written and logged (the last step of a run that wrote them)."""
    write_text(f"{results_root}/{STAMP_FILE}",
               json.dumps({"digest": digest, "mlflow_run_id": mlflow_run_id}, indent=1) + "\n")
