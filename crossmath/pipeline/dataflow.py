"""The evaluation pipeline on Ray Data: units -> images -> requests -> answers -> shards.

::

    (puzzle, style) units --render actors (CPU)--> + image
        --flat_map--> request rows (modality x sample)
        --inference actors (one per GPU, or CPU)--> prediction shards

Actor stages rely on Ray Data's defaults for failures: a dead actor (or a lost node) is
restarted and its batch retried. Only pending requests enter the pipeline (no saved answer, or
failed attempts left), so rerunning the same command finishes an interrupted run. Ray Data does
not keep row order; nothing here relies on it: every row carries its ids and results are joined
on them.

On a cluster nothing here reads a node-local file: the release's own images are read by the
driver and travel with the rows, and the prediction store is a location every node reaches.
Where stages run is Ray's business, steered by resources: inference actors ask for GPUs, and
render actors can be pinned to the nodes that declare a marker resource (``StageResources``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from crossmath.pipeline.requests import RequestPlan, expand_unit
from crossmath.pipeline.shards import PredictionStore
from crossmath.pipeline.sources import PuzzleSet

log = logging.getLogger(__name__)


# How much of the marker resource one render actor takes: enough to need a node that declares
# it, too little to limit how many actors fit there (CPUs do that).
MARKER_AMOUNT = 0.001


@dataclass(frozen=True)
class StageResources:
    """Ray resources per stage; ``infer_gpus`` 0 runs inference on CPU actors.

    ``render_node_resource`` names a custom Ray resource that only some nodes declare (the CPU
    workers of ``cluster.yaml`` declare ``cpu_node``); render actors then run only there, and an
    autoscaler adds nodes of that kind when more render actors are asked for. None: any node
    with a free CPU.
    """

    render_actors: int = 1
    render_batch_size: int = 32
    render_node_resource: str | None = None
    infer_actors: int = 1
    infer_gpus: float = 0
    infer_cpus: float = 1
    infer_batch_size: int = 16

    def render_remote_args(self) -> dict[str, Any]:
        """Ray options of a render actor."""
        args: dict[str, Any] = {"num_cpus": 1}
        if self.render_node_resource:
            args["resources"] = {self.render_node_resource: MARKER_AMOUNT}
        return args


@dataclass
class PipelineResult:
    predictions: pa.Table
    n_requests: int
    n_pending: int


def run_pipeline(puzzle_set: PuzzleSet, plan: RequestPlan, model_config: dict[str, Any],
                 store: PredictionStore, resources: StageResources) -> PipelineResult:
    """Answer every pending request of the plan (see ``RequestPlan.pending``); return the
    latest prediction of every request."""
    units = plan.units(puzzle_set.puzzles, puzzle_set.official_images)
    wanted = {r["request_id"] for unit in units for r in unit["requests"]}
    pending = plan.pending(units, store.latest_attempts())
    n_pending = sum(len(unit["requests"]) for unit in pending)
    log.info("%d requests, %d settled already, %d to run", len(wanted), len(wanted) - n_pending,
             n_pending)
    answered = _execute(pending, plan, model_config, store, resources) if pending else set()
    predictions = store.read()
    keep = pa.array([rid in wanted for rid in predictions.column("request_id").to_pylist()],
                    type=pa.bool_())
    predictions = predictions.filter(keep)
    missing = wanted - set(predictions.column("request_id").to_pylist())
    unseen = missing & answered
    if unseen:
        raise RuntimeError(
            f"{len(unseen)} predictions were saved by the inference actors but are not in "
            f"{store.root} as this process sees it: out_dir must be storage that every Ray node "
            "reaches (a shared path, or a URI such as s3://bucket/folder), not a node-local folder")
    if missing:
        raise RuntimeError(f"{len(missing)} requests have no prediction after the run; rerun the "
                           f"same command to finish them (saved work is kept in {store.root})")
    return PipelineResult(predictions, len(wanted), n_pending)


def _execute(units: list[dict], plan: RequestPlan, model_config: dict[str, Any],
             store: PredictionStore, resources: StageResources) -> set[str]:
    """Run the pipeline over ``units``; returns the ids the inference actors say they saved."""
    import ray

    from crossmath.pipeline.inference_stage import InferPredictions
    from crossmath.pipeline.render_stage import RenderImages

    to_render = [unit for unit in units if not unit["image_path"]]
    given = release_image_rows(units)
    parts = []
    if to_render:
        rendered = ray.data.from_items(to_render,
                                       override_num_blocks=_blocks(to_render, resources.render_batch_size))
        rendered = rendered.map_batches(
            RenderImages,
            batch_size=resources.render_batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=resources.render_actors),
            **resources.render_remote_args(),
        )
        parts.append(rendered.flat_map(_expand_row))
    if given:
        parts.append(ray.data.from_items(given,
                                         override_num_blocks=_blocks(given, resources.infer_batch_size)))
    dataset = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    dataset = dataset.map_batches(
        InferPredictions,
        fn_constructor_kwargs={"model_config": model_config, "store_root": store.root,
                               "prompt_id": plan.prompt_id},
        batch_size=resources.infer_batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=resources.infer_actors),
        num_gpus=resources.infer_gpus,
        num_cpus=resources.infer_cpus,
    )
    answered: set[str] = set()
    for batch in dataset.iter_batches(batch_format="pyarrow"):
        answered.update(batch.column("request_id").to_pylist())
    log.info("answered %d requests", len(answered))
    return answered


def release_image_rows(units: list[dict]) -> list[dict]:
    """The request rows of the units that come with the release's own image, image included.

    They need no rendering, and the file is read here, by the driver: it may exist on this
    machine only, never on the node a render actor would run on.
    """
    return [row for unit in units if unit["image_path"]
            for row in expand_unit(unit, Path(unit["image_path"]).read_bytes())]


def _blocks(rows: list[dict], batch_size: int) -> int:
    """Enough blocks for every actor to have work from the start; Ray Data would put a small
    list in a single block, which serialises the whole pipeline."""
    return max(1, min(len(rows) // batch_size, 1000))


def _expand_row(row: dict[str, Any]) -> list[dict[str, Any]]:
    return expand_unit(row, row.get("image"))
