"""A main job stopped by SIGTERM stops within seconds and resumes to exactly the answers of an
uninterrupted run.

The tiny VLM samples (``sampling: config``): a sample's randomness depends only on (seed,
request identity, sample index). The main job, started as a command with a Ray of its own, is
sent SIGTERM once it has saved its first answers: it must end within seconds with the exit
status and one line that say so, mark its MLflow run KILLED and incomplete with the cause, and
take its Ray with it. Run again, it must answer only what was not saved, compute no request
twice, finish the same MLflow run, and end with exactly the outputs of an uninterrupted run
with other batch sizes, a puzzle's samples not all equal. This checks that the pipeline keeps
request identities stable across processes, batches and resumes, on the real HF backend.
(A SIGKILL's resume is checked where the killed process cannot clean up anything: the vLLM
engine's, the story's and GRPO's tests.)
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict

import mlflow
import pyarrow.parquet as pq
import pytest

from crossmath.pipeline.evaluation import run_evaluation
from crossmath.pipeline.shards import PredictionStore
from crossmath.tracking.run_end import END_CAUSE_TAG
from tests.support import (
    command_env,
    last_own_line,
    outputs_by_request,
    run_command,
    wait_until_gone,
)


@pytest.mark.slow
def test_a_sampling_run_stopped_by_sigterm_resumes_to_the_answers_of_an_uninterrupted_one(
        ray_local, run_config, tiny_model_config, tmp_path, capsys):
    from crossmath import run

    models = tiny_model_config["model"]["cache_dir"]
    overrides = ["model=tiny-random", f"model.model.cache_dir={models}", "model.sampling=config",
                 "model.temperature=1.0", "data.n=6", "modalities=[text,image]",
                 "styles=[original]", "samples=4", "resources.call_sequences=2"]
    out, db = tmp_path / "out", tmp_path / "mlflow.db"  # where run_config puts them too
    total = 6 * 2 * 4

    # 1. the command with a Ray of its own (which must go with it), stopped by SIGTERM once
    #    its first answers are saved
    process = subprocess.Popen(run_command(overrides, out, db), cwd=tmp_path, env=command_env(),
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 240
    while not list((out / "shards").glob("*.parquet")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and time.monotonic() - stopped_at < 10
    assert last_own_line(stderr).startswith("crossmath.run: stopped by SIGTERM")
    assert "Traceback" not in stderr
    # its Ray's workers notice their raylet's end and exit within moments (the bound only
    # keeps a leak from hanging the test)
    wait_until_gone(process.pid, timeout_s=30)
    saved = PredictionStore(str(out)).saved_request_ids()  # every writer has ended
    assert 0 < len(saved) < total, "the stop should land mid-run"
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    (tracked,) = client.search_runs(["1"])
    assert tracked.info.status == "KILLED" and tracked.data.tags["incomplete"] == "true"
    assert tracked.data.tags[END_CAUSE_TAG] == "signal SIGTERM"

    # 2. the same command resumed in this process (the session's Ray, no second interpreter)
    capsys.readouterr()
    run.main(run_config(*overrides))
    assert f"{total} requests ({total - len(saved)} run now, the rest resumed)" in \
        capsys.readouterr().out
    resumed = pq.read_table(out / "predictions.parquet")
    ids = resumed.column("request_id").to_pylist()
    assert len(ids) == len(set(ids)) == total
    assert saved <= set(ids)
    computed = sum(pq.read_metadata(p).num_rows for p in (out / "shards").glob("*.parquet"))
    assert computed == total, "a finished request was computed again"
    (again,) = client.search_runs(["1"])  # one run across the stop, finished now
    assert again.info.run_id == tracked.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags["incomplete"] == "false" and END_CAUSE_TAG not in again.data.tags

    # 3. the answers of an uninterrupted run with other batch sizes
    straight = run_evaluation(run_config(*overrides, "resources.call_sequences=16",
                                         f"out_dir={tmp_path / 'straight'}"))
    assert outputs_by_request(straight.predictions) == outputs_by_request(resumed)
    by_request = defaultdict(set)
    for row in resumed.select(["puzzle_id", "modality", "output"]).to_pylist():
        by_request[row["puzzle_id"], row["modality"]].add(row["output"])
    assert all(len(outputs) > 1 for outputs in by_request.values()), by_request
