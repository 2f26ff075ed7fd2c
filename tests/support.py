"""Helpers shared by tests that run crossmath's commands in subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from crossmath.pipeline.shards import PredictionStore

REPO_ROOT = Path(__file__).resolve().parents[1]
# A line Ray forwards from one of its processes to the driver's terminal, whenever it arrives:
# "(raylet) ..." or "(MapWorker(...) pid=123) ...", maybe coloured
RAY_FORWARDED = re.compile(r"^(\x1b\[[0-9;]*m)?\((raylet|.*? pid=\d+)\)")


def command_env(**extra: str) -> dict[str, str]:
    """The environment for a command run in a subprocess: local Ray without its auth token,
    and the repository on ``PYTHONPATH`` (prepended) so that ``tests.doubles`` can be named
    as a model's ``_target_`` from any working directory."""
    inherited = os.environ.get("PYTHONPATH")
    path = str(REPO_ROOT) + (os.pathsep + inherited if inherited else "")
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": path, **extra}


def run_command(overrides: list[str], out: Path, database: Path) -> list[str]:
    """``python -m crossmath.run`` with ``overrides``, results in ``out``, MLflow in ``database``."""
    return [sys.executable, "-m", "crossmath.run", *overrides, f"out_dir={out}",
            f"mlflow.tracking_uri=sqlite:///{database}", "ray.num_cpus=2"]


def joining(ray) -> str:
    """The override that makes a command join the session's Ray (``ray`` is what the
    ``ray_local`` fixture yields) instead of starting and stopping a Ray of its own, as it would
    join a cluster: a local Ray's start and stop cost about 24 s of wall time on the loaded
    2-core box, joining about 1 s."""
    return f"ray.address={ray.get_runtime_context().gcs_address}"


def kill_at_shards(command: list[str], cwd: Path, out: Path, shards: int = 1,
                   timeout_s: float = 240) -> None:
    """Start ``command`` and SIGKILL its whole process group once ``out`` holds ``shards``
    prediction shards."""
    process = subprocess.Popen(command, cwd=cwd, env=command_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(list((out / "shards").glob("*.parquet"))) < shards:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its process group die at once
    process.wait()


def kill_midway(command: list[str], cwd: Path, out: Path, shards: int = 1,
                timeout_s: float = 240, joined=None) -> set[str]:
    """``kill_at_shards``, then the request ids saved by the killed run.

    ``joined``: the Ray (what ``ray_local`` yields) the command joined; its actors outlive the
    killed driver by a moment (Ray ends a dead driver's job and kills them), and are waited for.
    """
    kill_at_shards(command, cwd, out, shards, timeout_s)
    if joined is None:
        return settled_request_ids(out)
    wait_until_idle(joined)
    return PredictionStore(str(out)).saved_request_ids()


def wait_until_idle(ray, timeout_s: float = 60) -> None:
    """Wait until a killed driver that had joined ``ray`` is over: Ray has marked its job dead
    (and so killed the job's actors, which write nothing more) and every CPU is free again."""
    from ray._private.state import jobs  # the GCS job table (the state API needs a dashboard)

    ours, total = ray.get_runtime_context().get_job_id(), ray.cluster_resources().get("CPU", 0)
    deadline = time.monotonic() + timeout_s

    def busy() -> bool:
        alive = [job for job in jobs() if not job["IsDead"] and job["JobID"] != ours]
        return bool(alive) or ray.available_resources().get("CPU", 0) < total

    while busy():
        assert time.monotonic() < deadline, f"the killed job still runs after {timeout_s} s"
        time.sleep(0.2)


def settled_request_ids(out: Path) -> set[str]:
    """Saved ids once a killed job's last workers have stopped writing (Ray reaps them late)."""
    store, previous = PredictionStore(str(out)), None
    while True:
        current = store.saved_request_ids()
        if current == previous:
            return current
        previous = current
        time.sleep(3)


def last_own_line(stderr: str) -> str:
    """The command's own last line on ``stderr``: lines Ray forwarded from its processes left out
    (a raylet's warning, e.g. of a nearly full disk, can land after the command's last word)."""
    return [line for line in stderr.strip().splitlines() if not RAY_FORWARDED.match(line)][-1]


def outputs_by_request(predictions) -> dict[str, str]:
    """request_id -> output of a predictions table."""
    return dict(zip(predictions.column("request_id").to_pylist(),
                    predictions.column("output").to_pylist()))


def latest_checkpoint_step(snapshot: Path) -> int | None:
    """The step of the latest checkpoint Ray Train has committed, from its run snapshot."""
    try:
        state = json.loads(snapshot.read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or mid-write
        return None
    latest = state.get("latest_checkpoint_result")
    return int(latest["metrics"]["step"]) if latest else None


def session_processes(session: int) -> list[str]:
    """``pid args`` of each process still alive in the process session ``session``."""
    return subprocess.run(["ps", "-o", "pid=,args=", "-s", str(session)], capture_output=True,
                          text=True).stdout.splitlines()


def wait_until_gone(session: int, names: tuple[str, ...] = (), timeout_s: float = 60) -> None:
    """Wait until no process of ``session`` (none with one of ``names`` in its command line,
    if any are given) is left; fail naming those still there after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [line for line in session_processes(session)
                if not names or any(name in line for name in names)]
        if not left:
            return
        assert time.monotonic() < deadline, f"still running in session {session}: {left}"
        time.sleep(0.5)


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL the run's process group, then any Ray process it left in its session."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while listed := session_processes(process.pid):
        if time.monotonic() > deadline:  # Ray workers normally exit by themselves once orphaned
            for line in listed:
                try:
                    os.kill(int(line.split()[0]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.5)


def logged_steps(tracking_uri: str, out: Path, metric: str) -> list[int]:
    """The steps of ``metric`` logged so far by the training run of ``out`` (none before it has
    a run)."""
    from mlflow.tracking import MlflowClient

    run_file = out / "mlflow_run_id"
    if not run_file.is_file():
        return []
    run_id = run_file.read_text().strip()
    return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, metric))


def kill_after_first_checkpoint(command: list[str], cwd: Path, snapshot: Path,
                                timeout_s: float = 300, *, logged_past: tuple[str, Path, str] | None = None,
                                total_steps: int | None = None, joined=None) -> int:
    """Run ``command`` (``python -m crossmath.train ...``, or a command that runs it as a step)
    in its own session and SIGKILL it (Ray's processes included) once Ray Train has committed a
    checkpoint (``snapshot`` is the run's ``checkpoint_manager_snapshot.json``); returns that
    checkpoint's step.

    ``joined``: the Ray (what ``ray_local`` yields) the command joins (``joining``), as on a
    cluster, instead of starting its own; the killed job's workers are waited for.

    ``logged_past`` (tracking URI, out_dir, metric) waits further, until MLflow holds a step
    after the checkpoint's, so the resumed run has steps to repeat that were already logged;
    ``total_steps`` checks the kill left steps to run (the run did not finish first)."""
    log_path = cwd / "killed-run.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=command_env())
    deadline = time.monotonic() + timeout_s

    def ready() -> bool:
        step = latest_checkpoint_step(snapshot)
        if step is None:
            return False
        return logged_past is None or any(s > step for s in logged_steps(*logged_past))

    try:
        while not ready():
            assert process.poll() is None, f"training exited early:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        kill_session(process)
        if joined is not None:
            wait_until_idle(joined)
    step = latest_checkpoint_step(snapshot)
    if total_steps is not None:
        assert step < total_steps, f"killed after its last checkpoint ({step} of {total_steps})"
    return step


def evaluate_tiny_adapter(run_config, models: Path, adapter: Path, name: str) -> list[dict]:
    """The main job on the tiny model with ``adapter`` (two image requests); its predictions."""
    import pyarrow.parquet as pq

    from crossmath import run as main_job

    cfg = run_config("model=tiny-random", f"model.model.cache_dir={models}", f"model.adapter={adapter}",
                     f"model.name={name}", "data.n=2", "modalities=[image]", "styles=[original]",
                     "samples=1")
    main_job.main(cfg)
    return pq.read_table(Path(cfg.out_dir) / "predictions.parquet").to_pylist()
