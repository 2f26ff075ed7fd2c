"""A multi-node Ray cluster and an MLflow server on this one machine, shaped like cluster.yaml.

    python -m jobs.local_cluster          # start it; prints how to submit jobs; Ctrl-C stops it

Real, separate Ray nodes (``ray start``), each with its own ports and temp folder so they
do not clash with another Ray on the machine:

* a head that does no work (0 CPUs) and serves the dashboard and the Ray Job API;
* a CPU worker that declares the ``cpu_node`` marker (render actors run there);
* two "GPU" workers that declare one GPU each (Ray takes the word for it; inference actors run
  there, on the CPU when there is no real GPU);
* ``mlflow server`` on loopback with a SQLite store and served artifacts.

Every node sees ``CROSSMATH_STORAGE`` (a ``file://`` folder, shared because the nodes share
this machine's disk) and ``MLFLOW_TRACKING_URI``, as cluster.yaml's nodes do, so the job
entry points in ``jobs/`` run here unchanged. The tests use it too (tests/test_cluster.py).
Each node is started with ``ray start --block`` in its own process group: ``kill_node``
SIGKILLs that group, which is what a lost machine looks like to the rest of the cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from crossmath.orchestration.ray_jobs import CPU_NODE_RESOURCE
from crossmath.tracking.local_server import WITHOUT_JOB_RUNNER, server_command

NODE_RESOURCE_PREFIX = "local_node_"   # each node also declares local_node_<name>: 1, to be found
OBJECT_STORE_BYTES = 100 * 1024 * 1024
# The head notices a lost node after ~5 s of failed health checks instead of Ray's ~30 s default.
# Inherited by every process of the cluster, Ray's workers included, so that stop() finds them.
MARKER_ENV = "CROSSMATH_LOCAL_CLUSTER"
HEALTH_CHECKS = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "3000",
                 "RAY_health_check_failure_threshold": "5"}


@dataclass(frozen=True)
class NodeSpec:
    name: str
    num_cpus: int
    num_gpus: int = 0
    resources: dict[str, int] = field(default_factory=dict)


def default_nodes() -> list[NodeSpec]:
    """A CPU worker and two GPU workers (so that inference survives losing one), small
    enough for a laptop."""
    return [NodeSpec("cpu", 2, resources={CPU_NODE_RESOURCE: 1}),
            NodeSpec("gpu-a", 1, num_gpus=1),
            NodeSpec("gpu-b", 1, num_gpus=1)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalCluster:
    """Start with ``with LocalCluster(folder) as cluster:``; everything is stopped on exit."""

    def __init__(self, root: Path, nodes: list[NodeSpec] | None = None, *,
                 start_timeout_s: float = 180) -> None:
        self.root = Path(root).resolve()
        self.nodes = nodes if nodes is not None else default_nodes()
        self.start_timeout_s = start_timeout_s
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.mlflow_port = free_port()
        self.storage = (self.root / "storage").as_uri()
        self.node_ids: dict[str, str] = {}
        self._processes: dict[str, subprocess.Popen] = {}
        self._temp_dirs: list[str] = []
        self._logs: list = []

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def env(self) -> dict[str, str]:
        """What cluster.yaml's setup commands export on every node, and this interpreter's
        folder first on ``PATH``: a job's ``python -m crossmath...`` entrypoint is this Python
        (with crossmath installed), activated or not, as on a node set up by cluster.yaml."""
        path = os.pathsep.join(filter(None, [str(Path(sys.executable).parent),
                                             os.environ.get("PATH")]))
        return {**os.environ, **HEALTH_CHECKS, "RAY_AUTH_MODE": "disabled", "PATH": path,
                "CROSSMATH_STORAGE": self.storage, "MLFLOW_TRACKING_URI": self.mlflow_uri,
                "RAY_ADDRESS": "", MARKER_ENV: str(self.root)}

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> "LocalCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self._start_mlflow()
        self._start_ray("head", ["--head", f"--port={self.gcs_port}", "--num-cpus=0",
                                 "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                                 f"--dashboard-port={self.dashboard_port}",
                                 f"--ray-client-server-port={free_port()}"])
        self._wait_for(f"{self.dashboard_url}/api/version", "the Ray dashboard")
        for node in self.nodes:
            resources = {**node.resources, NODE_RESOURCE_PREFIX + node.name: 1}
            self._start_ray(node.name, [f"--address=127.0.0.1:{self.gcs_port}",
                                        f"--num-cpus={node.num_cpus}", f"--num-gpus={node.num_gpus}",
                                        f"--resources={json.dumps(resources)}"])
        self._wait_for(f"{self.mlflow_uri}/health", "the MLflow server")
        self._find_nodes()

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left; never touches other Rays."""
        for process in self._processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self._processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)
            process.wait()
        for pid in self._leftover_pids():  # workers left behind by a killed raylet
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log in self._logs:
            log.close()
        for temp_dir in self._temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)

    def kill_node(self, name: str) -> None:
        """Lose a worker node at once, as a crashed machine: SIGKILL its raylet and agents."""
        process = self._processes[name]
        _signal_group(process, signal.SIGKILL)
        process.wait()

    def node_name(self, node_id: str) -> str:
        """The name given in ``NodeSpec`` (or "head") of a Ray node id."""
        return {v: k for k, v in self.node_ids.items()}[node_id]

    # ------------------------------------------------------------ internals

    def _start_ray(self, name: str, arguments: list[str]) -> None:
        ports = [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                 f"--dashboard-agent-listen-port={free_port()}",
                 f"--dashboard-agent-grpc-port={free_port()}",
                 f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]
        # A short temp folder: Ray's socket paths must stay under the OS limit of ~107 bytes.
        temp_dir = tempfile.mkdtemp(prefix=f"ray-{name}-", dir="/tmp")
        self._temp_dirs.append(temp_dir)
        log = self._log(f"ray-{name}")
        self._processes[name] = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats",
             "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}",
             f"--object-store-memory={OBJECT_STORE_BYTES}", *ports, *arguments],
            stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)

    def _start_mlflow(self) -> None:
        log = self._log("mlflow")
        self._processes["mlflow"] = subprocess.Popen(
            server_command(self.mlflow_port, f"sqlite:///{self.root / 'mlflow.db'}",
                           "--serve-artifacts", "--artifacts-destination",
                           str(self.root / "mlartifacts")),
            stdout=log, stderr=subprocess.STDOUT, env={**self.env(), **WITHOUT_JOB_RUNNER},
            start_new_session=True)

    def _log(self, name: str):
        log = open(self.root / "logs" / f"{name}.log", "w")
        self._logs.append(log)
        return log

    def _wait_for(self, url: str, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what} did not answer at {url}; logs in {self.root / 'logs'}")
                time.sleep(0.5)

    def _find_nodes(self) -> None:
        from ray.util.state import list_nodes
        from ray.util.state.exception import RayStateApiException

        deadline = time.monotonic() + self.start_timeout_s
        while True:
            self._check_alive()
            try:
                alive = [n for n in list_nodes(address=self.dashboard_url, raise_on_missing_output=False)
                         if n.state == "ALIVE"]
            except (RayStateApiException, OSError):  # the dashboard is still warming up
                alive = []
            if len(alive) == len(self.nodes) + 1:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(alive)} of {len(self.nodes) + 1} Ray nodes joined; "
                                   f"logs in {self.root / 'logs'}")
            time.sleep(1)
        for node in alive:
            if node.is_head_node:
                self.node_ids["head"] = node.node_id
                continue
            names = [r.removeprefix(NODE_RESOURCE_PREFIX) for r in node.resources_total
                     if r.startswith(NODE_RESOURCE_PREFIX)]
            self.node_ids[names[0]] = node.node_id

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}; "
                                   f"see {self.root / 'logs'}")

    def _leftover_pids(self) -> list[int]:
        """Processes still running with this cluster's marker in their environment."""
        marker = f"{MARKER_ENV}={self.root}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        return pids


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="crossmath-local-cluster-"))
    with LocalCluster(root) as cluster:
        print(f"Ray dashboard and Job API: {cluster.dashboard_url}\nMLflow:  {cluster.mlflow_uri}\n"
              f"storage: {cluster.storage}\nnodes:   {cluster.node_ids}\n\n"
              f"try:     python -m jobs.evaluate --address {cluster.dashboard_url} "
              f"--mlflow-ui {cluster.mlflow_uri} model=oracle data.n=4 samples=2\n"
              "Ctrl-C stops the cluster.", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
