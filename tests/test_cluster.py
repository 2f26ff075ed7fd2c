"""The main job on a real multi-node Ray cluster on this machine, submitted as a Ray Job.

One cluster for the module (``jobs.local_cluster``): a head with no CPUs, a CPU worker with
the ``cpu_node`` marker, two workers that declare a GPU, and an ``mlflow server`` on loopback.
Jobs go through ``python -m jobs.evaluate``, as a user would submit them. Where each actor
ran is read back from Ray's own state API.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from crossmath.orchestration.ray_jobs import REPO_ROOT
from crossmath.pipeline.shards import PredictionStore
from jobs.local_cluster import LocalCluster

GPU_NODES = {"gpu-a", "gpu-b"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


def submit(cluster: LocalCluster, *overrides: str, **popen) -> subprocess.Popen:
    """``python -m jobs.evaluate`` against the cluster, following the job to its end."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.evaluate", "--address", cluster.dashboard_url,
         "--mlflow-ui", cluster.mlflow_uri, *overrides],
        cwd=REPO_ROOT, env={**os.environ, "RAY_AUTH_MODE": "disabled"}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def finish(job: subprocess.Popen) -> str:
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 0, output[-4000:]
    return output


def job_actors(cluster: LocalCluster, output: str) -> dict[str, list]:
    """The pipeline's actors of the job that ``output`` reports, by stage."""
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_actors

    submission_id = re.search(r"submitted (\S+):", output).group(1)
    job_id = JobSubmissionClient(cluster.dashboard_url).get_job_info(submission_id).job_id
    actors = list_actors(address=cluster.dashboard_url, filters=[("job_id", "=", job_id)],
                         limit=10_000, detail=True, raise_on_missing_output=False)
    return {stage: [a for a in actors if stage in a.class_name]
            for stage in ("RenderImages", "InferPredictions")}


def mlflow_run_id(output: str, cluster: LocalCluster) -> str:
    found = re.findall(r"MLflow run (\w+) at (\S+)", output)
    assert found and found[-1][1] == cluster.mlflow_uri, output[-2000:]
    return found[-1][0]


@pytest.mark.slow
def test_a_job_renders_on_cpu_infers_on_gpu_survives_losing_its_inference_node_and_logs(cluster):
    """One job for both bars (each job costs seconds of CPU on a 2-core box): where each stage
    runs, and a run that loses the node running its inference actor mid-run and still ends
    with every answer once, on the tracking server, where ``crossmath.report`` finds it."""
    evaluations = Path(cluster.root, "storage", "runs", "slow-oracle", "generated-mixed-n12-seed0")
    job = submit(cluster, "model=oracle", "model._target_=tests.doubles.SlowBackend",
                 "model.name=slow-oracle", "+model.delay_s=0.25", "data.n=12", "samples=1",
                 "styles=[original]", "resources.call_sequences=2", "mlflow.experiment=placement")
    total = 12 * (1 + 2)  # text, and hybrid and image in the one style
    deadline = time.monotonic() + 240
    while not evaluations.is_dir() or not any(evaluations.iterdir()):
        assert job.poll() is None, job.communicate()[0][-4000:]
        assert time.monotonic() < deadline, "the job never got going"
        time.sleep(0.2)
    (out,) = evaluations.iterdir()
    store = PredictionStore(str(out))
    while len(store.saved_request_ids()) < 6:
        assert job.poll() is None, job.communicate()[0][-4000:]
        assert time.monotonic() < deadline, "the job never got going"
        time.sleep(0.2)
    from ray.util.state import list_actors

    inferring = [a for a in list_actors(address=cluster.dashboard_url, limit=10_000,
                                        filters=[("state", "=", "ALIVE")])
                 if "InferPredictions" in a.class_name]
    assert len(inferring) == 1
    lost = cluster.node_name(inferring[0].node_id)
    cluster.kill_node(lost)
    saved_before = store.saved_request_ids()
    assert len(saved_before) < total, "the node was lost after the run had finished"

    # every answer once, the ones saved before the loss kept
    output = finish(job)
    ids = pq.read_table(out / "predictions.parquet").column("request_id").to_pylist()
    assert len(ids) == len(set(ids)) == total
    assert saved_before <= set(ids)
    assert store.saved_request_ids() == set(ids)  # no stray request in any shard either

    # rendering on the CPU node; inference on GPU nodes only, restarted on the one left
    stages = job_actors(cluster, output)
    assert stages["RenderImages"] and stages["InferPredictions"]
    assert {cluster.node_name(a.node_id) for a in stages["RenderImages"]} == {"cpu"}
    restarted = stages["InferPredictions"]
    assert {cluster.node_name(a.node_id) for a in restarted} == GPU_NODES - {lost}
    assert all(a.required_resources.get("GPU") == 1 for a in restarted)
    assert max(a.num_restarts for a in restarted) >= 1

    # logged to the server: metrics, the experiment asked for, provenance, artifacts
    run_id = mlflow_run_id(output, cluster)
    client = MlflowClient(cluster.mlflow_uri)
    run = client.get_run(run_id)
    assert run.data.metrics["text/markdown/macro_acc"] == 100.0
    assert run.data.metrics["hybrid/original/macro_acc"] == 100.0
    assert run.data.tags["n_requests"] == str(total)
    assert client.get_experiment(run.info.experiment_id).name == "placement"
    # the uploaded working directory has no .git: the commit comes from the submitting checkout
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", run.data.tags["git_commit"])
    assert {"predictions.parquet", "metrics.json", "report.md"} <= {
        f.path for f in client.list_artifacts(run_id)}  # uploaded through the server
    assert out.name == run.data.tags["evaluation_id"][:12]  # one folder per evaluation
    assert run.data.tags["out_dir"] == out.as_uri()

    compared = subprocess.run(  # what docs/cluster.md says to run against the tracking server
        [sys.executable, "-m", "crossmath.report", f"mlflow.tracking_uri={cluster.mlflow_uri}",
         "mlflow.experiment=placement", f"out={cluster.root / 'reports'}"],
        cwd=cluster.root, capture_output=True, text=True, timeout=120)
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert "| slow-oracle [SlowBackend] |" in compared.stdout  # labelled by what was evaluated
    assert (cluster.root / "reports" / "comparison.md").is_file()
