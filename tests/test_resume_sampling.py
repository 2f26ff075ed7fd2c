"""Sampled answers of the tiny VLM survive a kill and a resume unchanged.

A sample's randomness depends only on (seed, request identity, sample index): the main job
killed mid-run and resumed must end with exactly the outputs of an uninterrupted run with other
batch sizes, and a puzzle's samples must not all be equal. The keyed sampling itself is the HF
backend's (``sampling: config``); this checks that the pipeline keeps request identities stable
across processes, batches and resumes.
"""

from __future__ import annotations

import inspect
from collections import defaultdict

import pyarrow.parquet as pq
import pytest

from crossmath.models.hf import HFBackend
from crossmath.pipeline.evaluation import run_evaluation
from tests.support import kill_midway, outputs_by_request, run_command

keyed_sampling = pytest.mark.skipif(
    "sampling" not in inspect.signature(HFBackend.__init__).parameters,
    reason="needs the HF backend's keyed `sampling` option (hfgen branch, issue #11 point 3)")


@pytest.mark.slow
@keyed_sampling
def test_tiny_model_samples_are_the_same_after_a_kill_and_resume(
        ray_local, run_config, tiny_model_config, tmp_path):
    models = tiny_model_config["model"]["cache_dir"]
    overrides = ["model=tiny-random", f"model.model.cache_dir={models}", "model.sampling=config",
                 "model.temperature=1.0", "data.n=6", "modalities=[text,image]",
                 "styles=[original]", "samples=4", "resources.call_sequences=2"]
    out, db = tmp_path / "out", tmp_path / "mlflow.db"
    command = run_command(overrides, out, db)
    saved = kill_midway(command, tmp_path, out)
    total = 6 * 2 * 4
    assert 0 < len(saved) < total, "the kill should land mid-run"

    # the same config resumed in this process (the session's Ray: no second interpreter and
    # Ray start); run_config puts its outputs and MLflow where the killed command did
    run_evaluation(run_config(*overrides))
    resumed = pq.read_table(out / "predictions.parquet")
    assert resumed.num_rows == total

    straight = run_evaluation(run_config(*overrides, "resources.call_sequences=16",
                                         f"out_dir={tmp_path / 'straight'}"))
    assert outputs_by_request(straight.predictions) == outputs_by_request(resumed)
    by_request = defaultdict(set)
    for row in resumed.select(["puzzle_id", "modality", "output"]).to_pylist():
        by_request[row["puzzle_id"], row["modality"]].add(row["output"])
    assert all(len(outputs) > 1 for outputs in by_request.values()), by_request
