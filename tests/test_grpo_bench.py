"""bench/grpo_gpu.py stays runnable: its CPU smoke run (tiny model) completes and reports.

Run as a subprocess, as on the device: the script's watchdog ends its own process at the time
budget, which must never be pytest's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT, command_env


def test_the_grpo_bench_smoke_run_reports_rollouts_and_steps(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "grpo_gpu.py"), "--tiny",
                           "--cache-dir", str(tmp_path / "models"), "--time-budget-s", "600"],
                          env=command_env(OUT=str(out)), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "grpo_gpu.json").read_text())
    assert report["status"] == "done" and report["info"]["shape"] == "tiny"
    rollouts = report["rollouts"]
    assert rollouts["loop"]["sequences"] == 2 * 4 and rollouts["batched"]["sequences"] == 4 * 4
    assert rollouts["identical_completions"] == "8/8"  # same keys, fp32: batching changes nothing
    assert rollouts["batched"]["prompts_prefilled"] == 4  # once per puzzle, not per completion
    assert rollouts["ratio_batched_vs_loop"] > 0
    steps = report["grpo_steps"]
    assert steps["steps"] == 2 and steps["step_time_s"] > steps["rollout_time_s"] > 0
    assert "rollout tokens/s, batched / loop" in done.stdout
