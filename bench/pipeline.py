"""Does the main job keep a model busy? The stand-in benchmark of issue #13 (points 1 and 2).

    python bench/pipeline.py [--n 250] [--call-s 1.0] [--batch-size 64] [--actors 1,2]

The stand-in model (``crossmath.models.flat_cost.FlatCostBackend``) costs ``--call-s`` per call whether the
call holds one sequence or ``--batch-size`` (the shape of a memory-bound decode) and answers like
the oracle. The real Ray Data pipeline feeds it N generated puzzles x {text, image, hybrid} x 4
styles x 1 sample (2,250 requests for 250 puzzles), rendering by a render actor included. For
each number of inference actors, in the same run:

  fixed-16   the wiring before issue #13, rebuilt here from the same stages: request rows in
             Ray Data batches of 16 (the old ``resources.infer_batch_size``), units rendered in
             batches of 32
  planned    the pipeline as it is (``crossmath.pipeline.dataflow.run_pipeline``): calls planned
             to the model's ``batch_size``, the next call queued on each actor

Printed per variant: calls, median requests per call, the gaps between two calls of one actor,
and efficiency = (calls a perfect feeder would need x call cost) / (actors x time from the first
call's start to the last call's end). Both variants must give the same metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
from call_log import busy  # (bench/call_log.py)

from crossmath.drawing import load_style
from crossmath.metrics.scorecard import evaluate_predictions
from crossmath.models.base import TEXT_STYLE
from crossmath.models.call_log import read_call_log
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.pipeline.calls import call_requests, call_table
from crossmath.pipeline.dataflow import StageResources, run_pipeline
from crossmath.pipeline.inference_stage import InferPredictions
from crossmath.pipeline.render_stage import RenderImages
from crossmath.pipeline.shards import PredictionStore
from crossmath.puzzle.table import puzzles_to_table
from crossmath.tasks.crossmath.requests import RequestPlan
from crossmath.tasks.crossmath.sources import PuzzleSet, generated_puzzles

STYLES = ["original", "noborder", "beige", "altstyle"]
MODALITIES = ["text", "image", "hybrid"]
OLD_ROWS_PER_CALL = 16  # resources.infer_batch_size before issue #13
OLD_UNITS_PER_RENDER = 32  # resources.render_batch_size before issue #13


@dataclass
class Figures:
    variant: str
    actors: int
    calls: int
    median_requests: float
    perfect_calls: int
    busy_span_s: float  # first call's start to last call's end
    efficiency: float
    max_gap_s: float  # the longest wait of one actor between two of its calls
    mean_gap_s: float
    wall_s: float  # the whole pipeline run, actor start-up included


def figures(variant: str, actors: int, log: Path, batch_size: int, call_s: float,
            wall_s: float) -> Figures:
    calls = read_call_log(log)
    seen = busy(calls)
    perfect = math.ceil(sum(call["sequences"] for call in calls) / batch_size)
    return Figures(variant, actors, seen.calls, seen.median_requests, perfect,
                   round(seen.span_s, 2), round(perfect * call_s / (actors * seen.span_s), 3),
                   round(seen.max_gap_s, 3), round(seen.mean_gap_s, 3), round(wall_s, 1))


class RequestRowBatches(InferPredictions):
    """The inference stage before issue #13: whatever Ray Data batch of request rows arrives is
    one backend call."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.answer(batch)


def run_fixed_rows(puzzle_set: PuzzleSet, plan: RequestPlan, model_config: dict,
                   store: PredictionStore, resources: StageResources) -> pa.Table:
    """The pre-#13 wiring on today's stages: units rendered 32 a batch, then request rows in
    fixed batches of 16, each batch one call."""
    import ray

    units = plan.units(puzzle_set.puzzles)
    one_unit_calls = [call_table({"call": i, "sequences": len(unit["requests"]),
                                  "units": [{**unit, "images": None}]})
                      for i, unit in enumerate(units)]
    blocks = [pa.concat_tables(one_unit_calls[i:i + OLD_UNITS_PER_RENDER])
              for i in range(0, len(one_unit_calls), OLD_UNITS_PER_RENDER)]
    dataset = ray.data.from_blocks(blocks).map_batches(  # as the pipeline builds its dataset
        RenderImages, fn_constructor_kwargs={"styles": dict(plan.styles)},
        batch_size=OLD_UNITS_PER_RENDER, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=resources.render_actors), num_cpus=1,
    ).flat_map(call_requests).map_batches(
        RequestRowBatches,
        fn_constructor_kwargs={"model_config": model_config, "store_root": store.root,
                               "prompt_id": plan.prompt_id},
        batch_size=OLD_ROWS_PER_CALL, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=resources.infer_actors),
        num_cpus=resources.infer_cpus,
    )
    for _ in dataset.iter_batches(batch_format="pyarrow"):
        pass
    return store.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=250, help="generated puzzles (mixed difficulty)")
    parser.add_argument("--call-s", type=float, default=1.0, help="the stand-in's cost per call")
    parser.add_argument("--batch-size", type=int, default=64, help="its sequences per call")
    parser.add_argument("--actors", default="1,2", help="inference actors to try, comma list")
    parser.add_argument("--render-actors", type=int, default=1)
    parser.add_argument("--ray-cpus", type=int, default=4,
                        help="logical CPUs for Ray's scheduling (the stand-in only sleeps)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    puzzle_set = generated_puzzles(args.n, "mixed", 0)
    plan = RequestPlan(MODALITIES, {name: load_style(name) for name in STYLES}, 1,
                       load_prompt_template(DEFAULT_PROMPT), "flat-cost")
    n_requests = len(puzzle_set.puzzles) * (1 + 2 * len(STYLES))
    print(f"{len(puzzle_set.puzzles)} puzzles, {n_requests} requests; stand-in call "
          f"{args.call_s:g} s for up to {args.batch_size} sequences; {os.cpu_count()} CPUs here",
          flush=True)

    import ray

    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # this script's own context
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    puzzles = puzzles_to_table(puzzle_set.puzzles)
    results: list[Figures] = []
    metrics = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        for actors in [int(a) for a in args.actors.split(",")]:
            resources = StageResources(render_actors=args.render_actors, infer_actors=actors,
                                       infer_cpus=0.5)
            for variant in ("fixed-16", "planned"):
                folder = Path(scratch, f"{variant}-{actors}")
                log = folder / "calls.jsonl"
                folder.mkdir()
                model = {"_target_": "crossmath.models.flat_cost.FlatCostBackend", "name": "flat-cost",
                         "prompt": DEFAULT_PROMPT, "batch_size": args.batch_size,
                         "call_s": args.call_s, "call_log": str(log)}
                store = PredictionStore(str(folder))
                started = time.perf_counter()
                if variant == "planned":
                    result = run_pipeline(plan.units(puzzle_set.puzzles), model, store, resources,
                                          prompt_id=plan.prompt_id, styles=plan.styles)
                    predictions = result.predictions
                else:
                    predictions = run_fixed_rows(puzzle_set, plan, model, store, resources)
                wall = time.perf_counter() - started
                assert predictions.num_rows == n_requests, (variant, predictions.num_rows)
                results.append(figures(variant, actors, log, args.batch_size, args.call_s, wall))
                print_row(results[-1])
                scored = evaluate_predictions(predictions, puzzles, samples=1, n_resamples=100)
                metrics[variant, actors] = [scored.group("flat-cost", m, s).macro.mean
                                            for m, s in (("text", TEXT_STYLE), ("hybrid", "all"),
                                                         ("image", "all"))]
    assert len({tuple(v) for v in metrics.values()}) == 1, f"metrics differ: {metrics}"
    print("same metrics from every variant (text, hybrid, image macro):",
          metrics[next(iter(metrics))])
    for actors in sorted({r.actors for r in results}):
        old, new = (next(r for r in results if (r.variant, r.actors) == (v, actors))
                    for v in ("fixed-16", "planned"))
        floor = 0.8 * args.batch_size
        print(f"{actors} actor(s): planned efficiency {new.efficiency} vs fixed-16 "
              f"{old.efficiency} ({new.efficiency / old.efficiency:.2f}x); busy span "
              f"{new.busy_span_s} s vs {old.busy_span_s} s; bar: median >= {floor:g} requests "
              f"({'met' if new.median_requests >= floor else 'NOT met'}), "
              f"efficiency >= 0.85 ({'met' if new.efficiency >= 0.85 else 'NOT met'})")
    if args.json:
        payload = {"args": vars(args), "results": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def print_row(row: Figures) -> None:
    print(f"{row.variant:>9} x{row.actors}: {row.calls:4d} calls, median "
          f"{row.median_requests:5.1f} requests/call, perfect {row.perfect_calls}, busy span "
          f"{row.busy_span_s:7.2f} s, efficiency {row.efficiency:.3f}, gaps max "
          f"{row.max_gap_s:.3f} s mean {row.mean_gap_s:.3f} s, wall {row.wall_s} s", flush=True)


if __name__ == "__main__":
    main()
