"""What building a run's Ray dataset costs: ``ray.data.from_blocks`` (the pipeline's way, each
block's metadata read in the driver) against ``ray.data.from_arrow`` (a remote task per block,
which starts task workers the rest of a run never uses).

    python bench/dataset_start.py [--n 6] [--repeats 3]

Each measurement is a fresh process joining one local Ray, as each ``python -m crossmath.run``
is a new Ray job with no workers of its own yet. It runs the real pipeline
(``crossmath.pipeline.dataflow.run_pipeline``: render actor, inference actor, shards) on N
generated puzzles x {text, image} with the oracle, the dataset built one way or the other
(the baseline swaps ``ray.data.from_blocks`` for ``ray.data.from_arrow``, nothing else). The
two ways alternate; printed: the pipeline's wall time, the Ray worker processes it started and
the CPU seconds they used (polled every 0.1 s), medians, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ray_workers import workers_started  # (bench/ray_workers.py)

WAYS = ("from_arrow", "from_blocks")  # the baseline first


def measure(way: str, n: int, address: str, folder: Path) -> dict:
    """One pipeline run in this process, joined to the Ray at ``address``."""
    import ray

    from crossmath.drawing import load_style
    from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
    from crossmath.pipeline.dataflow import StageResources, run_pipeline
    from crossmath.pipeline.shards import PredictionStore
    from crossmath.tasks.crossmath.requests import RequestPlan
    from crossmath.tasks.crossmath.sources import generated_puzzles

    if way == "from_arrow":
        ray.data.from_blocks = ray.data.from_arrow  # the baseline: the same blocks, metadata remote
    ray.init(address=address, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    plan = RequestPlan(["text", "image"], {"original": load_style("original")}, 1,
                       load_prompt_template(DEFAULT_PROMPT), "oracle")
    units = plan.units(generated_puzzles(n, "easy", 0).puzzles)
    model = {"_target_": "crossmath.models.baselines.OracleBackend", "name": "oracle",
             "prompt": DEFAULT_PROMPT}
    with workers_started() as workers:
        started = time.time()
        result = run_pipeline(units, model, PredictionStore(str(folder)),
                              StageResources(render_actors=1, infer_actors=1),
                              prompt_id=plan.prompt_id, styles=plan.styles)
        wall = time.time() - started
    assert result.n_pending == result.n_requests > 0, result
    return {"way": way, "wall_s": round(wall, 2), "workers": len(workers),
            "worker_cpu_s": round(sum(workers.values()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6, help="generated puzzles (easy)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each way")
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--one", choices=WAYS, help=argparse.SUPPRESS)  # a child's measurement
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.one:
        print(json.dumps(measure(args.one, args.n, args.address, Path(args.out))), flush=True)
        return

    import ray

    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as scratch:
        for repeat in range(args.repeats):
            for way in WAYS:
                done = subprocess.run(
                    [sys.executable, __file__, "--one", way, "--n", str(args.n), "--address",
                     address, "--out", str(Path(scratch, f"{way}-{repeat}"))],
                    capture_output=True, text=True, check=True)
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    ray.shutdown()
    medians = {way: {key: statistics.median(r[key] for r in rows if r["way"] == way)
                     for key in ("wall_s", "workers", "worker_cpu_s")} for way in WAYS}
    old, new = medians["from_arrow"], medians["from_blocks"]
    print(f"medians of {args.repeats}: from_arrow {old}; from_blocks {new}")
    print(f"pipeline wall time {old['wall_s'] / new['wall_s']:.2f}x shorter; worker processes "
          f"{old['workers']:g} -> {new['workers']:g}; their CPU {old['worker_cpu_s']:g} s -> "
          f"{new['worker_cpu_s']:g} s")


if __name__ == "__main__":
    main()
