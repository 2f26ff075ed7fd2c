"""What asking the probe's second round in the first round's actors saves: a CrossMath evaluation
with the perception probe on the tiny VLM, its T̂ requests asked right after each call by the
actor that answered it (``Questions.follow_ups``, the pipeline's way) against a second pass
through the dataflow (the baseline: ``follow_ups`` returns None, as before).

    python bench/probe_rounds.py [--n 4] [--repeats 3]

Both ways run the real main job (``run_evaluation``: render and inference actors, shards,
scores, MLflow) in this process, on one local Ray, with the same settings (N generated puzzles
x {text, image, transcribe}, one style, greedy), each into a folder of its own, alternating.
Printed per run: wall time, the Ray worker processes it started (the inference actors load the
model) and the CPU seconds they used (polled every 0.1 s); then the medians, the ratio, and a
check that both ways gave every request the same answer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from ray_workers import workers_started  # (bench/ray_workers.py)

WAYS = ("second pass", "follow-ups")  # the baseline first


def measure(way: str, overrides: list[str]) -> tuple[dict, dict[str, str]]:
    """One evaluation, ``way``; its numbers and its answers by request id."""
    from hydra import compose, initialize_config_module

    from crossmath.pipeline.evaluation import run_evaluation
    from crossmath.tasks.crossmath.questions import PuzzleQuestions

    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("run", overrides=overrides)
    original = PuzzleQuestions.follow_ups
    if way == "second pass":
        PuzzleQuestions.follow_ups = lambda self, round_index: None
    try:
        with workers_started() as workers:
            started = time.time()
            outcome = run_evaluation(cfg)
            wall = time.time() - started
    finally:
        PuzzleQuestions.follow_ups = original
    assert outcome.n_run_now == outcome.n_requests > 0 and outcome.complete, outcome
    answers = dict(zip(outcome.predictions.column("request_id").to_pylist(),
                       outcome.predictions.column("output").to_pylist()))
    return ({"way": way, "wall_s": round(wall, 2), "workers": len(workers),
             "worker_cpu_s": round(sum(workers.values()), 2)}, answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="generated puzzles")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each way")
    parser.add_argument("--ray-cpus", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray

    from crossmath.models.tiny import build_tiny_random

    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    rows: list[dict] = []
    answers: dict[str, list[dict[str, str]]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as scratch:
        models = Path(scratch, "models")
        build_tiny_random(models)
        for repeat in range(args.repeats):
            for way in WAYS:
                folder = Path(scratch, f"{way.replace(' ', '-')}-{repeat}")
                row, answered = measure(way, [
                    "model=tiny-random", f"model.model.cache_dir={models}",
                    "model.sampling=greedy", f"data.n={args.n}", "samples=1",
                    "modalities=[text,image,transcribe]", "styles=[original]",
                    f"out_dir={folder}", f"mlflow.tracking_uri=sqlite:///{scratch}/mlflow.db"])
                rows.append(row)
                answers[way].append(answered)
                print(row, flush=True)
    ray.shutdown()
    same = all(a == answers[WAYS[0]][0] for way in WAYS for a in answers[way])
    medians = {way: {key: statistics.median(r[key] for r in rows if r["way"] == way)
                     for key in ("wall_s", "workers", "worker_cpu_s")} for way in WAYS}
    old, new = medians[WAYS[0]], medians[WAYS[1]]
    print(f"medians of {args.repeats}: second pass {old}; follow-ups {new}")
    print(f"evaluation wall time {old['wall_s'] / new['wall_s']:.2f}x shorter; worker processes "
          f"{old['workers']:g} -> {new['workers']:g}; their CPU {old['worker_cpu_s']:g} s -> "
          f"{new['worker_cpu_s']:g} s; the same answers either way: {same}")


if __name__ == "__main__":
    main()
