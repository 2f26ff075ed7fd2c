"""bench/grpo_gpu.py stays runnable: its CPU smoke run (tiny model) completes and reports.

Run as a subprocess, as on the device: the script's watchdog ends its own process at the time
budget, which must never be pytest's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, command_env


@pytest.mark.slow
def test_the_grpo_bench_smoke_run_reports_rollouts_and_steps(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "grpo_gpu.py"), "--tiny",
                           "--cache-dir", str(tmp_path / "models"), "--time-budget-s", "600"],
                          env=command_env(OUT=str(out)), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "grpo_gpu.json").read_text())
    assert report["status"] == "done" and report["info"]["shape"] == "tiny"
    rollouts = report["rollouts"]
    # the ratio compares equal batches: the same 2 puzzles x 4 samples in both
    assert rollouts["loop"]["sequences"] == rollouts["batched"]["sequences"] == 2 * 4
    assert rollouts["batched_whole_step"]["sequences"] == 4 * 4
    assert rollouts["identical_completions"] == "8/8"  # same keys, fp32: batching changes nothing
    assert rollouts["batched"]["prompts_prefilled"] == 2  # once per puzzle, not per completion
    assert rollouts["ratio_batched_vs_loop"] > 0
    update = report["update"]  # 4 puzzles x 4 completions of --max-completion-tokens
    assert update["sequences"] == 16 and update["completion_tokens"] == 8
    assert update["tokens_per_s"] > 0 and update["model_tflops_per_s"] > 0
    assert update["vision_once_per_prompt"] is True and update["mfu"] is None  # no GPU peak on CPU
    steps = report["grpo_steps"]
    assert steps["steps"] == 2 and steps["step_time_s"] > steps["rollout_time_s"] > 0
    assert "rollout tokens/s, batched / loop at equal batches (8 sequences)" in done.stdout
    assert "GRPO update at 8-token completions" in done.stdout
