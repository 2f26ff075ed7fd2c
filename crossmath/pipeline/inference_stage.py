"""The inference stage: a Ray Data actor that answers calls and saves each as one shard.

The actor builds its backend once (``hydra.utils.instantiate`` on the model config), inside
the actor, so weights load once per replica and torch is imported only where it runs. Each
call (one row of ``calls.CALL_SCHEMA``, planned to fill the backend) is answered with one
``generate``, its answers extracted, and the predictions written as one shard before the call
is handed on: work finished is never lost, even if a later call crashes the actor, and a call
Ray retries after a crash is answered whole again (the store keeps one copy of each request).

When the task's next round follows this one answer by answer (``follow_ups``: the probe asks
each transcription back as text, on the same model), the actor asks a call's follow-ups right
after the call, as one more backend call and shard: the next round then finds them answered,
and starts no actor and loads no model again. They are the very requests the next round would
plan (the same function plans them), so the answers are the same whichever way they ran.

A request the backend could not answer (its response's ``error`` is set) is saved as a failure,
with no answer and its attempt number, so that the run can report it and a rerun can try it
again. A backend that raises breaks its contract (a bug): the run stops with that cause. A
crash of the actor's process is Ray's to handle: it restarts the actor and retries the call.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from crossmath.metrics.answers import extract_answer
from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.config import backend_arguments
from crossmath.pipeline.calls import call_requests, call_table
from crossmath.pipeline.shards import PredictionStore
from crossmath.tasks.questions import FollowUps

REQUEST_COLUMNS = ("request_id", "puzzle_id", "name", "difficulty", "modality", "style",
                   "sample", "attempt", "grid", "n_blanks", "value_range", "prompt_texts",
                   "images", "image_at", "options")


class InferPredictions:
    """``map_batches`` callable: call rows in, one row per request (its id) out."""

    def __init__(self, model_config: dict[str, Any], store_root: str, prompt_id: str,
                 follow_ups: FollowUps | None = None) -> None:
        import hydra.utils

        self.backend = hydra.utils.instantiate(backend_arguments(model_config))
        self.store = PredictionStore(store_root)
        self.prompt_id = prompt_id
        self.follow_ups = follow_ups

    def __call__(self, calls: pa.Table) -> pa.Table:
        if "units" not in calls.column_names:
            raise ValueError("inference stage: batch lacks column 'units'; "
                             f"it has {calls.column_names}")
        saved: list[dict] = []
        for call in calls.to_pylist():
            predictions = self.answer(pa.Table.from_pylist(call_requests(call)))
            saved += predictions
            if self.follow_ups is not None:
                saved += self._follow_up(call["call"], predictions)
        return pa.table({"request_id": [p["request_id"] for p in saved],
                         "failed": [p["error"] is not None for p in saved]})

    def answer(self, batch: pa.Table) -> list[dict]:
        """Request rows answered as one backend call and saved as one shard; the predictions."""
        missing = [c for c in REQUEST_COLUMNS if c not in batch.column_names]
        if missing:
            raise ValueError(f"inference stage: batch lacks column(s) {missing}")
        rows = batch.select(list(REQUEST_COLUMNS)).to_pylist()
        requests = [ModelRequest.from_row(row) for row in rows]
        responses = self._answer(requests)
        predictions = [self._prediction(row, response) for row, response in zip(rows, responses)]
        self.store.write_shard(predictions)
        return predictions

    def _follow_up(self, number: int, predictions: list[dict]) -> list[dict]:
        """The follow-ups of call ``number``'s ``predictions`` (text requests, at most one per
        prediction: they fit a call), answered as one more call and shard; their predictions."""
        units = self.follow_ups(predictions)
        if not units:
            return []
        call = {"call": number, "sequences": sum(len(u["requests"]) for u in units),
                "units": units}
        return self.answer(pa.Table.from_pylist(call_requests(call_table(call).to_pylist()[0])))

    def _answer(self, requests: list[ModelRequest]) -> list[ModelResponse]:
        """The backend's responses, checked to be one per request in order.

        A backend that raises fails the run; one that answers garbage is recorded as is and
        scored wrong.
        """
        responses = self.backend.generate(requests)
        ids = [r.request_id for r in responses]
        if ids != [r.request_id for r in requests]:
            raise RuntimeError(
                f"backend {self.backend.name!r} returned {len(ids)} responses for "
                f"{len(requests)} requests, or out of order"
            )
        return responses

    def _prediction(self, row: dict, response: ModelResponse) -> dict:
        return prediction_row(row, response, self.prompt_id, self.backend.name)


def prediction_row(row: dict, response: ModelResponse, prompt_id: str, model: str) -> dict:
    """The saved prediction of one request row (``REQUEST_COLUMNS``) and its response: a failed
    request keeps no answer (``pred`` None) and its error."""
    return {
        **{k: row[k] for k in ("request_id", "puzzle_id", "name", "difficulty", "modality",
                               "style", "sample", "attempt")},
        "prompt_id": prompt_id,
        "model": model,
        "output": response.output,
        "pred": extract_answer(response.output) if response.error is None else None,
        "n_prompt_tokens": response.n_prompt_tokens,
        "n_output_tokens": response.n_output_tokens,
        "latency_s": response.latency_s,
        "error": response.error,
        "finish_reason": response.finish_reason,
    }
