"""An MLflow tracking server on this machine: ``mlflow server`` on a free local port, for as long
as a ``with`` block runs (the REST test and the UI screenshots start one over their store)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

START_TIMEOUT_S = 240  # a loaded 2-core machine takes a minute
STOP_TIMEOUT_S = 30
# ``mlflow server`` also starts a job runner for MLflow's server-side jobs (GenAI scorers, trace
# rollups): seven more processes, each importing MLflow, that crossmath never uses. Its servers
# start without it (the runs, metrics, artifacts and the UI are served the same).
WITHOUT_JOB_RUNNER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_command(port: int, backend_store_uri: str, *options: str,
                   host: str = "127.0.0.1") -> list[str]:
    """``mlflow server`` with this interpreter: one web worker on ``host:port`` over
    ``backend_store_uri``, plus ``options``; run it with ``WITHOUT_JOB_RUNNER`` in its
    environment."""
    return [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
            "--workers", "1", "--backend-store-uri", backend_store_uri, *options]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def mlflow_server(backend_store_uri: str, folder: Path,
                  artifacts_destination: Path | None = None) -> Iterator[str]:
    """Serve ``backend_store_uri`` on 127.0.0.1 and yield the server's URL once it answers;
    its log is ``folder/mlflow-server.log``. ``artifacts_destination``: where the artifacts of
    experiments the server creates go (default: its ``mlartifacts`` in ``folder``)."""
    port = free_port()
    options = ([] if artifacts_destination is None
               else ["--artifacts-destination", str(artifacts_destination)])
    command = server_command(port, backend_store_uri, *options)
    log_path = folder / "mlflow-server.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, **WITHOUT_JOB_RUNNER})
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start: "
                                       f"{log_path.read_text()[-2000:]}")
                time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=5).ok
    except requests.RequestException:  # not listening yet, or too busy starting to answer
        return False
