"""Helpers shared by tests that run crossmath's commands in subprocesses."""

from __future__ import annotations

import os
import time
from pathlib import Path

from crossmath.pipeline.shards import PredictionStore

REPO_ROOT = Path(__file__).resolve().parents[1]


def command_env(**extra: str) -> dict[str, str]:
    """The environment for a command run in a subprocess: local Ray without its auth token,
    and the repository on ``PYTHONPATH`` (prepended) so that ``tests.doubles`` can be named
    as a model's ``_target_`` from any working directory."""
    inherited = os.environ.get("PYTHONPATH")
    path = str(REPO_ROOT) + (os.pathsep + inherited if inherited else "")
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": path, **extra}


def settled_request_ids(out: Path) -> set[str]:
    """Saved ids once a killed job's last workers have stopped writing (Ray reaps them late)."""
    store, previous = PredictionStore(str(out)), None
    while True:
        current = store.saved_request_ids()
        if current == previous:
            return current
        previous = current
        time.sleep(3)


def outputs_by_request(predictions) -> dict[str, str]:
    """request_id -> output of a predictions table."""
    return dict(zip(predictions.column("request_id").to_pylist(),
                    predictions.column("output").to_pylist()))
