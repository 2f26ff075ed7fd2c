"""The main job's pipeline against a plain single-process loop doing the same work.

    python bench/pipeline.py [--data PATH] [--n 250]

Work: every puzzle x {text, image, hybrid} x 4 styles, one sample, the oracle model,
rendering included, answers extracted and scored. Without --data, 250 generated puzzles
(mixed difficulty) stand in for the public test set. Both sides render each (puzzle, style)
image once and ask text once per puzzle (text does not depend on the style). The pipeline
figure includes starting Ray and its actors.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from crossmath.drawing import load_style, render_puzzle_png
from crossmath.metrics.answers import extract_answer
from crossmath.metrics.scorecard import evaluate_predictions
from crossmath.models.base import TEXT_STYLE, ModelRequest, Prompt
from crossmath.models.baselines import OracleBackend
from crossmath.pipeline.dataflow import StageResources, run_pipeline
from crossmath.pipeline.requests import RequestPlan
from crossmath.pipeline.shards import PredictionStore
from crossmath.pipeline.sources import PuzzleSet, generated_puzzles, official_puzzles
from crossmath.puzzle.table import puzzles_to_table

STYLES = ["original", "noborder", "beige", "altstyle"]
MODALITIES = ["text", "image", "hybrid"]


def plain_loop(puzzle_set: PuzzleSet) -> list[dict]:
    backend = OracleBackend()
    styles = {name: load_style(name) for name in STYLES}
    predictions = []

    def ask(puzzle, modality, style, image):
        request = ModelRequest(f"{puzzle.puzzle_id}/{modality}/{style}", Prompt(()), modality=modality,
                               grid_markdown=puzzle.markdown_table, n_blanks=len(puzzle.answer),
                               value_range=puzzle.value_range)
        output = backend.generate([request])[0].output
        predictions.append({"puzzle_id": puzzle.puzzle_id, "model": backend.name, "modality": modality,
                            "style": style, "sample": 0, "pred": extract_answer(output)})

    for puzzle in puzzle_set.puzzles:
        ask(puzzle, "text", TEXT_STYLE, None)
        for name, style in styles.items():
            image = render_puzzle_png(puzzle.grid, style)
            for modality in ("image", "hybrid"):
                ask(puzzle, modality, name, image)
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an official jsonl or release folder")
    parser.add_argument("--n", type=int, default=250)
    parser.add_argument("--render-actors", type=int, default=2)
    parser.add_argument("--infer-actors", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    puzzle_set = (official_puzzles(args.data, STYLES, limit=args.n) if args.data
                  else generated_puzzles(args.n, "mixed", 0))
    puzzles = puzzles_to_table(puzzle_set.puzzles)
    n_requests = len(puzzle_set.puzzles) * (1 + 2 * len(STYLES))
    print(f"{len(puzzle_set.puzzles)} puzzles, {n_requests} requests, {os.cpu_count()} CPUs")

    started = time.perf_counter()
    loop_metrics = evaluate_predictions(plain_loop(puzzle_set), puzzles, samples=1, n_resamples=1000)
    loop_s = time.perf_counter() - started
    print(f"plain loop: {loop_s:6.1f} s, {n_requests / loop_s:7.1f} requests/s")

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    plan = RequestPlan(MODALITIES, STYLES, 1, None, "oracle")
    resources = StageResources(render_actors=args.render_actors, infer_actors=args.infer_actors,
                               render_batch_size=32, infer_batch_size=128, infer_cpus=0.5)
    with tempfile.TemporaryDirectory() as out:
        result = run_pipeline(puzzle_set, plan, {"_target_": "crossmath.models.baselines.OracleBackend"},
                              PredictionStore(out), resources)
        pipeline_metrics = evaluate_predictions(result.predictions, puzzles, samples=1, n_resamples=1000)
    pipeline_s = time.perf_counter() - started
    print(f"pipeline:   {pipeline_s:6.1f} s, {n_requests / pipeline_s:7.1f} requests/s "
          f"(Ray start {ray_start_s:.1f} s included) -> {loop_s / pipeline_s:.2f}x the loop")
    for modality, style in (("text", TEXT_STYLE), ("hybrid", "all"), ("image", "all")):
        a = loop_metrics.group("oracle", modality, style).macro.mean
        b = pipeline_metrics.group("oracle", modality, style).macro.mean
        assert a == b, (modality, a, b)
    print("same metrics from both")


if __name__ == "__main__":
    main()
