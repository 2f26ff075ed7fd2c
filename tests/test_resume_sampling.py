"""A killed main job resumes to exactly the answers of an uninterrupted run.

The tiny VLM samples (``sampling: config``): a sample's randomness depends only on (seed,
request identity, sample index), so the main job killed mid-run (SIGKILL, its saved shards
left as they were) and run again must answer only what was not saved, compute no request
twice, keep one MLflow run across the kill, and end with exactly the outputs of an uninterrupted
run with other batch sizes, a puzzle's samples not all equal. This checks that the pipeline
keeps request identities stable across processes, batches and resumes, on the real HF backend.
"""

from __future__ import annotations

from collections import defaultdict

import mlflow
import pyarrow.parquet as pq
import pytest

from crossmath.pipeline.evaluation import run_evaluation
from tests.support import joining, kill_midway, outputs_by_request, run_command


@pytest.mark.slow
def test_a_killed_sampling_run_resumes_to_the_answers_of_an_uninterrupted_one(
        ray_local, run_config, tiny_model_config, tmp_path, capsys):
    from crossmath import run

    models = tiny_model_config["model"]["cache_dir"]
    overrides = ["model=tiny-random", f"model.model.cache_dir={models}", "model.sampling=config",
                 "model.temperature=1.0", "data.n=6", "modalities=[text,image]",
                 "styles=[original]", "samples=4", "resources.call_sequences=2"]
    out, db = tmp_path / "out", tmp_path / "mlflow.db"  # where run_config puts them too
    # the command joins the session's Ray, as on a cluster; its actors die with its job
    command = run_command([*overrides, joining(ray_local)], out, db)
    saved = kill_midway(command, tmp_path, out, joined=ray_local)
    total = 6 * 2 * 4
    assert 0 < len(saved) < total, "the kill should land mid-run"

    # the same command resumed in this process (no second interpreter)
    capsys.readouterr()
    run.main(run_config(*overrides))
    assert f"{total} requests ({total - len(saved)} run now" in capsys.readouterr().out
    resumed = pq.read_table(out / "predictions.parquet")
    ids = resumed.column("request_id").to_pylist()
    assert len(ids) == len(set(ids)) == total
    assert saved <= set(ids)
    computed = sum(pq.read_metadata(p).num_rows for p in (out / "shards").glob("*.parquet"))
    assert computed == total, "a finished request was computed again"
    runs = mlflow.MlflowClient(f"sqlite:///{db}").search_runs(["1"])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # one run across the kill

    straight = run_evaluation(run_config(*overrides, "resources.call_sequences=16",
                                         f"out_dir={tmp_path / 'straight'}"))
    assert outputs_by_request(straight.predictions) == outputs_by_request(resumed)
    by_request = defaultdict(set)
    for row in resumed.select(["puzzle_id", "modality", "output"]).to_pylist():
        by_request[row["puzzle_id"], row["modality"]].add(row["output"])
    assert all(len(outputs) > 1 for outputs in by_request.values()), by_request
