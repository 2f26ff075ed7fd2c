"""``bench/infer_gpu.py --tiny`` end to end on CPU: the GPU script's variants run and agree on
the work they did (timings on CPU mean nothing and are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO_ROOT, command_env


@pytest.mark.slow
def test_the_inference_bench_runs_its_variants_on_the_tiny_model(tmp_path: Path) -> None:
    plan = "loop:1,dynamic:1,shared:1,static:1"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "infer_gpu.py"), "--tiny", "--variants", plan,
         "--samples", "2", "--time-budget-s", "400", "--cache-dir", str(tmp_path / "models")],
        env=command_env(OUT=str(tmp_path)), capture_output=True, text=True, timeout=450,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = {r["variant"]: r for r in json.loads((tmp_path / "infer_gpu.json").read_text())["results"]}
    assert set(results) == {"loop", "dynamic-1", "shared-1", "static-1"}
    assert all(r["status"] == "ok" for r in results.values()), results
    assert all(r["extra"]["lengths_as_forced"] for r in results.values())  # the same forced work
    assert len({r["useful_tokens"] for r in results.values()}) == 1
    for name in ("dynamic-1", "shared-1", "static-1"):
        result = results[name]
        assert result["ratio_vs_loop"] and result["decode_ms_per_step"] > 0
        assert 0 < result["slot_use"] <= 1
