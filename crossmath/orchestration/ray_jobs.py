"""Ray Jobs: cluster defaults, the job's environment, submit, wait, report.

A job runs ``python -m crossmath.…`` on the cluster's head node, in a copy of the checkout this
package is installed from (``pip install -e``; Ray uploads it as the job's working directory,
minus what .gitignore and ``EXCLUDES`` leave out), so the code that runs is the code you submit. Where outputs and MLflow runs go is
resolved *on the cluster*: ``cluster.yaml`` exports ``CROSSMATH_STORAGE`` and
``MLFLOW_TRACKING_URI`` on every node, and the commands refer to them as Hydra interpolations.
Any override you pass wins over the defaults here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import urlparse

from crossmath.core.errors import ConfigError
from crossmath.orchestration.story_plan import Step
from crossmath.runtime.ray_cluster import port_silence

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout (an editable install's)
DEFAULT_ADDRESS = "http://127.0.0.1:8265"   # the dashboard, as `ray dashboard cluster.yaml` forwards it
CPU_NODE_RESOURCE = "cpu_node"               # the marker resource of cluster.yaml's CPU workers
CLUSTER_STORAGE = "${oc.env:CROSSMATH_STORAGE}"
CLUSTER_MLFLOW = "${oc.env:MLFLOW_TRACKING_URI}"
GIT_COMMIT_ENV = "CROSSMATH_GIT_COMMIT"      # read by crossmath.run (the upload has no .git)
EXCLUDES = [".git", "runs", "multirun", "outputs", "mlruns", "mlartifacts", "mlflow.db", "reports",
            ".pytest_cache", "**/__pycache__", "*.egg-info"]
MLFLOW_RUN_LINE = re.compile(r"MLflow run (\w+) at (\S+)")
FINAL = ("SUCCEEDED", "FAILED", "STOPPED")
DASHBOARD_TIMEOUT_S = 10


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every entry point takes: where the cluster is, where results go, waiting."""
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS", DEFAULT_ADDRESS),
                        help="the cluster's dashboard URL (default: $RAY_ADDRESS or %(default)s)")
    parser.add_argument("--storage", default=CLUSTER_STORAGE,
                        help="storage every node reaches: a shared path or a URI such as "
                             "s3://bucket/crossmath (default: $CROSSMATH_STORAGE on the cluster)")
    parser.add_argument("--mlflow-uri", default=CLUSTER_MLFLOW,
                        help="tracking URI as the cluster's nodes reach it "
                             "(default: $MLFLOW_TRACKING_URI on the cluster)")
    parser.add_argument("--mlflow-ui", default=os.environ.get("CROSSMATH_MLFLOW_UI"),
                        help="the tracking server as this machine reaches it, e.g. "
                             "http://127.0.0.1:5000 after `ray dashboard cluster.yaml --port 5000 "
                             "--remote-port 5000`; used to print links to the runs")
    parser.add_argument("--gpus", type=float, default=1,
                        help="GPUs per model replica (0 for API or baseline models)")
    parser.add_argument("--connect-timeout-s", type=float, default=DASHBOARD_TIMEOUT_S,
                        help="how long the dashboard may take to answer (default %(default)s)")
    parser.add_argument("--no-wait", action="store_true",
                        help="submit and return instead of waiting for the job to finish")


def placement_defaults(args: argparse.Namespace) -> dict[str, str]:
    """What ``crossmath.run`` needs on the cluster: join it, place its stages, log to its MLflow."""
    return {
        "ray.address": "auto",
        "resources.render_node_resource": CPU_NODE_RESOURCE,
        "resources.infer_gpus": f"{args.gpus:g}",
        "mlflow.tracking_uri": args.mlflow_uri,
    }


def run_defaults(args: argparse.Namespace) -> dict[str, str]:
    """``placement_defaults`` and outputs in shared storage, one folder per evaluation."""
    return {**placement_defaults(args), "runs_dir": f"{args.storage}/runs"}


def command(*words: str) -> str:
    """A shell command line. Words are quoted, so that the cluster's Hydra, not its shell,
    resolves their ``${...}``."""
    return " ".join(shlex.quote(word) for word in words)


def python_module(module: str, overrides: Iterable[str]) -> str:
    return command("python", "-m", module, *overrides)


def chained_steps(steps: Sequence[Step]) -> str:
    """Planned steps as one job's command line: each ``python -m <module> <overrides>``, run
    once the one before it has succeeded (the first failure ends the job with its status)."""
    return " && ".join(python_module(step.module, step.overrides) for step in steps)


def runtime_env() -> dict:
    if not (REPO_ROOT / "pyproject.toml").is_file():
        raise ConfigError("crossmath", f"installed in {REPO_ROOT.parent}, not from a checkout: a "
                                       "Ray Job uploads the checkout it runs; install crossmath "
                                       "from one with pip install -e")
    return {"working_dir": str(REPO_ROOT), "excludes": EXCLUDES,
            "env_vars": {GIT_COMMIT_ENV: git_commit()}}


def git_commit() -> str:
    """The checkout's commit, with ``-dirty`` when tracked files have changes."""
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass
class Submitted:
    job_id: str
    label: str


class Cluster:
    """The Ray Job API of one cluster."""

    def __init__(self, address: str, connect_timeout_s: float = DASHBOARD_TIMEOUT_S) -> None:
        from ray.job_submission import JobSubmissionClient

        self.address = address.rstrip("/")
        where = urlparse(self.address)
        silence = port_silence(where.hostname or "127.0.0.1", where.port or 8265,
                               connect_timeout_s)
        if silence is not None:  # the Job API client would retry for a minute
            raise ConfigError("--address", f"no Ray dashboard answers at {self.address} "
                              f"({silence}, for {connect_timeout_s:g} s); start the cluster "
                              "and forward its dashboard (`ray dashboard cluster.yaml`), or pass "
                              "its address")
        try:
            self.client = JobSubmissionClient(self.address)
        except ConnectionError as error:
            raise ConfigError("--address", f"no Ray dashboard answers at {self.address} "
                              f"({_first_line(error)}); start the cluster and forward its "
                              "dashboard (`ray dashboard cluster.yaml`), or pass its address") \
                from None

    def submit(self, entrypoint: str, kind: str, label: str) -> Submitted:
        job_id = f"crossmath-{kind}-{_slug(label)}-{uuid.uuid4().hex[:6]}"
        self.client.submit_job(entrypoint=entrypoint, submission_id=job_id, runtime_env=runtime_env(),
                               metadata={"kind": kind, "label": label})
        print(f"submitted {job_id}: {entrypoint}\n  dashboard: {self.address}/#/jobs/{job_id}\n"
              f"  logs:      ray job logs --address {self.address} -f {job_id}", flush=True)
        return Submitted(job_id, label)

    def follow(self, job_id: str) -> str:
        """Print the job's logs as they come; returns its final status."""
        async def tail() -> None:
            async for lines in self.client.tail_job_logs(job_id):
                print(lines, end="", flush=True)

        asyncio.run(tail())
        return self.wait(job_id)

    def wait(self, job_id: str, poll_s: float = 2.0) -> str:
        while (status := str(self.client.get_job_status(job_id).value)) not in FINAL:
            time.sleep(poll_s)
        return status

    def mlflow_runs(self, job_id: str) -> list[tuple[str, str]]:
        """(run id, tracking URI) of every MLflow run the job's commands reported, in order."""
        return MLFLOW_RUN_LINE.findall(self.client.get_job_logs(job_id))


def report(cluster: Cluster, job: Submitted, status: str, mlflow_ui: str | None) -> bool:
    """One line per finished job: its status and where its MLflow runs are; True if it succeeded."""
    print(f"{job.label}: {status} ({job.job_id})")
    for run_id, uri in cluster.mlflow_runs(job.job_id):
        print(f"  MLflow run {run_id} at {uri}" + (f"\n  {run_link(mlflow_ui, run_id)}" if mlflow_ui else ""))
    if status != "SUCCEEDED":
        print(f"  see: ray job logs --address {cluster.address} {job.job_id}")
    return status == "SUCCEEDED"


def run_link(mlflow_ui: str, run_id: str) -> str:
    """The run's page in the MLflow UI (asks the server, briefly, for the run's experiment)."""
    base = mlflow_ui.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=10) as reply:
            experiment = json.load(reply)["run"]["info"]["experiment_id"]
    except (OSError, ValueError, KeyError) as error:  # the run id printed above still stands
        return f"(no link: {base} did not answer: {type(error).__name__})"
    return f"{base}/#/experiments/{experiment}/runs/{run_id}"


def pending_note(cluster: Cluster, jobs: list[Submitted]) -> None:
    for job in jobs:
        print(f"not waiting for {job.job_id}; its MLflow run is printed at the end of "
              f"`ray job logs --address {cluster.address} {job.job_id}`")


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()),
                type(error).__name__)


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()[:40] or "job"


def connect(address: str, connect_timeout_s: float = DASHBOARD_TIMEOUT_S) -> Cluster:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # as the local commands run Ray
    return Cluster(address, connect_timeout_s)
