"""The inference stage for engine backends: calls overlap, and each answer is saved as it ends.

A batch backend (``inference_stage.InferPredictions``) answers one call at a time and saves it
as one shard. An engine backend (vLLM: continuous batching) would idle through every call's
tail that way, its slots emptying while the call's longest answer finishes. Here the actor is
an async Ray Data stage that runs ``CALLS_IN_FLIGHT`` calls at once: the next call's requests
reach the engine while the current one's last answers decode, so its scheduler always has work
queued (the planner sizes calls by the engine's ``max_num_seqs``).

The backend yields each response the moment it ends (``answers``); the stage saves what has
ended as small shards (one per ``FLUSH_EVERY_S`` at most, all that ended since the last), so
a killed actor loses only the requests in flight and the last fraction of a second. Shards of
a call carry the run's token and the call's number in their names: a call that Ray retries
after a crash reads them and asks only what the crashed try had not saved, so no request is
written twice. The call's rows come out as ``InferPredictions``' do (request id, failed).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyarrow as pa

from crossmath.models.base import ModelRequest
from crossmath.models.config import backend_arguments
from crossmath.pipeline.calls import call_requests
from crossmath.pipeline.inference_stage import REQUEST_COLUMNS, prediction_row
from crossmath.pipeline.shards import PredictionStore

# Calls an actor answers at once. A call ends with its slowest answer, and answer lengths have
# a long tail: with several calls in flight, a straggler of one call holds one engine slot, not
# the actor's intake. Requests beyond the engine's max_num_seqs wait in its queue, costing no
# compute (and nothing when a kill loses them).
CALLS_IN_FLIGHT = 4
# Finished answers are saved at least this often (a kill loses at most this much finished work).
FLUSH_EVERY_S = 1.0


class StreamPredictions:
    """``map_batches`` callable (async): call rows in, one row per request (its id) out."""

    def __init__(self, model_config: dict[str, Any], store_root: str, prompt_id: str,
                 run_token: str) -> None:
        import hydra.utils

        self.backend = hydra.utils.instantiate(backend_arguments(model_config))
        self.store = PredictionStore(store_root)
        self.prompt_id = prompt_id
        self.run_token = run_token

    async def __call__(self, calls: pa.Table) -> pa.Table:
        if "units" not in calls.column_names:
            raise ValueError("inference stage: batch lacks column 'units'; "
                             f"it has {calls.column_names}")
        answered: dict[str, bool] = {}
        for call in calls.to_pylist():
            answered.update(await self.answer(call["call"], call_requests(call)))
        return pa.table({"request_id": list(answered),
                         "failed": [not ok for ok in answered.values()]})

    async def answer(self, number: int, rows: list[dict]) -> dict[str, bool]:
        """The request rows of call ``number`` answered, each saved soon after it ends; returns
        whether each request got an answer (True for those an earlier try saved)."""
        missing = [c for c in REQUEST_COLUMNS if rows and c not in rows[0]]
        if missing:
            raise ValueError(f"inference stage: request rows lack column(s) {missing}")
        prefix = f"{self.run_token}-{number:06d}-"
        saved = await asyncio.to_thread(self.store.saved_request_ids, prefix)
        todo = {row["request_id"]: row for row in rows if row["request_id"] not in saved}
        outcome = {row["request_id"]: True for row in rows if row["request_id"] in saved}
        writer = _ShardWriter(self.store, prefix)
        try:
            requests = [ModelRequest.from_row(row) for row in todo.values()]
            async for response in self.backend.answers(requests):
                row = todo[response.request_id]
                writer.add(prediction_row(row, response, self.prompt_id, self.backend.name))
                outcome[response.request_id] = response.error is None
        finally:
            await writer.close()  # what ended is saved, whatever stopped the call
        unanswered = set(todo) - set(outcome)
        if unanswered:
            raise RuntimeError(f"backend {self.backend.name!r} gave no response for "
                               f"{len(unanswered)} of call {number}'s requests")
        return outcome


class _ShardWriter:
    """Saves predictions as they come: whatever arrived since the last shard, in a new shard,
    at most once per ``FLUSH_EVERY_S`` (the write itself runs in a thread)."""

    def __init__(self, store: PredictionStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix
        self.pending: list[dict] = []
        self.arrived = asyncio.Event()
        self.closing = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    def add(self, prediction: dict) -> None:
        self.pending.append(prediction)
        self.arrived.set()

    async def close(self) -> None:
        self.closing = True
        self.arrived.set()
        await self.task

    async def _run(self) -> None:
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            started = time.monotonic()
            if self.pending:
                batch, self.pending = self.pending, []
                await asyncio.to_thread(self.store.write_shard, batch, self.prefix)
            if self.closing and not self.pending:
                return
            if not self.closing:
                await asyncio.sleep(max(0.0, FLUSH_EVERY_S - (time.monotonic() - started)))
