"""The evaluation pipeline on Ray Data: calls -> images -> answers -> shards.

::

    units planned by the task's questions (``crossmath.tasks``: ``Questions.units``)
    calls planned on the driver (``calls``: each fills one backend call)
        --render actors (CPU)--> + each unit's image, where it has none yet
        --inference actors (one per GPU, or CPU)--> one generate per call, one shard per call

The dataflow does not know what it asks: it takes units (``units``) planned by whoever asks
(``questions``), answers their pending requests and returns the latest prediction of each. The
driver packs the pending requests into calls that fill the backend (its capacity comes from
the model config) and hands each call to Ray Data as one row. Render actors work ahead of the
inference actors, and each inference actor holds the next call while it answers the current one
(``CALLS_QUEUED_PER_ACTOR``), so a model never waits for its input between calls. An engine
backend (``calls.streams_answers``: vLLM) gets the async stage of ``engine_stage`` instead,
which answers two calls at once and saves each answer as it ends. Where the task's next round
follows this one answer by answer (``Questions.follow_ups``: the probe asks each transcription
back as text), the batch stage asks each call's follow-ups right after it, on the model it has
loaded: the next round finds them answered and starts nothing.

Actor stages rely on Ray Data's defaults for failures: a dead actor (or a lost node) is
restarted and its call retried. Only pending requests enter the pipeline (no saved answer, or
failed attempts left), so rerunning the same command finishes an interrupted run. Ray Data does
not keep row order; nothing here relies on it: every row carries its ids and results are joined
on them.

On a cluster nothing here reads a node-local file: the release's own images are read by the
driver and travel with the calls, and the prediction store is a location every node reaches.
Where stages run is Ray's business, steered by resources: inference actors ask for GPUs, and
render actors can be pinned to the nodes that declare a marker resource (``StageResources``).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pyarrow as pa

from crossmath.drawing import Style
from crossmath.pipeline.calls import (
    CallCapacity,
    call_table,
    model_capacity,
    needs_render,
    plan_calls,
    streams_answers,
)
from crossmath.pipeline.shards import PredictionStore
from crossmath.pipeline.units import pending_units
from crossmath.tasks.questions import FollowUps

log = logging.getLogger(__name__)


# How much of the marker resource one render actor takes: enough to need a node that declares
# it, too little to limit how many actors fit there (CPUs do that).
MARKER_AMOUNT = 0.001

# Calls sent to an inference actor at once: the one it answers and the next, whose rows are
# then already on the actor when the current call ends (Ray's default, load-bearing here).
CALLS_QUEUED_PER_ACTOR = 2


@dataclass(frozen=True)
class StageResources:
    """Ray resources per stage, and the size of a backend call.

    ``infer_gpus`` 0 runs inference on CPU actors. ``render_node_resource`` names a custom Ray
    resource that only some nodes declare (the CPU workers of ``cluster.yaml`` declare
    ``cpu_node``); render actors then run only there, and an autoscaler adds nodes of that kind
    when more render actors are asked for. None: any node with a free CPU.

    ``call_sequences`` overrides the sequences per call that the model config states
    (``calls.model_capacity``); ``call_tokens`` caps a call's estimated tokens (prompts plus
    new tokens, over its sequences), for models whose memory long prompts would overrun.
    """

    render_actors: int = 1
    render_node_resource: str | None = None
    infer_actors: int = 1
    infer_gpus: float = 0
    infer_cpus: float = 1
    call_sequences: int | None = None
    call_tokens: int | None = None

    def render_remote_args(self) -> dict[str, Any]:
        """Ray options of a render actor."""
        args: dict[str, Any] = {"num_cpus": 1}
        if self.render_node_resource:
            args["resources"] = {self.render_node_resource: MARKER_AMOUNT}
        return args

    def call_capacity(self, model_config: dict[str, Any]) -> CallCapacity:
        return model_capacity(model_config, self.call_sequences, self.call_tokens)


@dataclass
class PipelineResult:
    predictions: pa.Table
    n_requests: int
    n_pending: int
    n_followed_up: int = 0  # follow-ups of the next round answered already (``follow_ups``)


def run_pipeline(units: list[dict], model_config: dict[str, Any], store: PredictionStore,
                 resources: StageResources, *, prompt_id: str, max_attempts: int = 1,
                 before_work: Callable[[], object] | None = None,
                 styles: Mapping[str, Style] | None = None,
                 follow_ups: FollowUps | None = None) -> PipelineResult:
    """Answer every pending request of ``units`` (see ``units.pending_units``); return the
    latest prediction of every request they hold. ``before_work`` (connecting to Ray) is
    called only when some request is pending: nothing to run starts nothing. ``styles``: the
    units' styles, resolved at the door (the render actors draw with them; none are needed
    when no unit is drawn). ``follow_ups`` (``Questions.follow_ups``): the next round's
    requests that follow from these answers, which a batch backend's actors ask right after
    them (an engine's leave them to the next round)."""
    wanted = {r["request_id"] for unit in units for r in unit["requests"]}
    pending = pending_units(units, store.latest_attempts(), max_attempts)
    n_pending = sum(len(unit["requests"]) for unit in pending)
    log.info("%d requests, %d settled already, %d to run", len(wanted), len(wanted) - n_pending,
             n_pending)
    answered = set()
    if pending:
        capacity = resources.call_capacity(model_config)
        calls = plan_calls(pending, capacity, styles)
        log.info("%d calls of %s; the last holds %d sequences", len(calls), capacity.describe(),
                 calls[-1]["sequences"])
        if before_work is not None:
            before_work()
        answered = _execute(calls, model_config, store, resources, prompt_id, styles or {},
                            follow_ups)
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
    return PipelineResult(predictions, len(wanted), n_pending, len(answered - wanted))


def _execute(calls: list[dict], model_config: dict[str, Any], store: PredictionStore,
             resources: StageResources, prompt_id: str, styles: Mapping[str, Style],
             follow_ups: FollowUps | None = None) -> set[str]:
    """Run the pipeline over ``calls``; returns the ids the inference actors say they saved."""
    import ray

    from crossmath.pipeline.engine_stage import CALLS_IN_FLIGHT, StreamPredictions
    from crossmath.pipeline.inference_stage import InferPredictions
    from crossmath.pipeline.render_stage import RenderImages

    attach_release_images(calls)
    # a block per call; from_blocks reads each block's metadata here, where from_arrow would
    # send a remote task per block, starting task workers that nothing else in the run uses
    dataset = ray.data.from_blocks([call_table(call) for call in calls])
    if any(needs_render(unit) for call in calls for unit in call["units"]):
        dataset = dataset.map_batches(
            RenderImages,
            fn_constructor_kwargs={"styles": dict(styles)},
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=resources.render_actors),
            **resources.render_remote_args(),
        )
    stage_kwargs = {"model_config": model_config, "store_root": store.root,
                    "prompt_id": prompt_id}
    if streams_answers(model_config):  # an engine: calls overlap, answers saved as they end
        stage, stage_kwargs["run_token"] = StreamPredictions, uuid.uuid4().hex[:12]
        compute = ray.data.ActorPoolStrategy(size=resources.infer_actors,
                                             max_tasks_in_flight_per_actor=CALLS_IN_FLIGHT,
                                             max_concurrent_calls_per_actor=CALLS_IN_FLIGHT)
    else:
        stage, stage_kwargs["follow_ups"] = InferPredictions, follow_ups
        compute = ray.data.ActorPoolStrategy(size=resources.infer_actors,
                                             max_tasks_in_flight_per_actor=CALLS_QUEUED_PER_ACTOR)
    dataset = dataset.map_batches(
        stage,
        fn_constructor_kwargs=stage_kwargs,
        batch_size=1,  # one call
        batch_format="pyarrow",
        compute=compute,
        num_gpus=resources.infer_gpus,
        num_cpus=resources.infer_cpus,
    )
    saved: set[str] = set()
    failed = 0
    for batch in dataset.iter_batches(batch_format="pyarrow"):
        saved.update(batch.column("request_id").to_pylist())
        failed += sum(batch.column("failed").to_pylist())
    log.info("asked %d requests: %d answered, %d failed", len(saved), len(saved) - failed, failed)
    return saved


def attach_release_images(calls: list[dict]) -> None:
    """Give each unit that comes with the release's own image that file's bytes, in place.

    The file is read here, by the driver: it may exist on this machine only, never on the node
    a render actor would run on. A file shared by two calls is read once.
    """
    read: dict[str, bytes] = {}
    for call in calls:
        for unit in call["units"]:
            path = unit["image_path"]
            if path:
                if path not in read:
                    read[path] = Path(path).read_bytes()
                unit["images"] = [read[path]]

