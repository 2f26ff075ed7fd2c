"""A small OpenAI-compatible chat-completions server around any ``Backend``.

It lets OpenAI clients (the official ``openai`` package, crossmath's own ``model=openai``) be
tested over real HTTP against a real model (the tiny random VLM through the hf backend) without
vLLM, and lets a laptop demo serve a local model:

    python -m crossmath.serve model=tiny-random server.port=8000

Each ``POST /v1/chat/completions`` is read by ``chat_protocol``: the client's prompt is answered
as written, options are honoured or refused with a 400 naming them, and the answer goes back as
one JSON object or as server-sent events (``stream``). Requests that arrive close together are
answered in one ``generate`` call (up to ``max_batch_size``), one batch at a time. A request the
backend could not answer is a 500 (clients retry those), never an empty answer. What is honoured,
refused and ignored is listed in docs/serving.md.

For tests, ``FaultPlan`` makes the server fail its first requests (a 5xx, or a 429 with
``Retry-After``) or hold them before answering, so retries and timeouts meet real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Iterator

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from crossmath.models.base import Backend, ModelRequest, ModelResponse
from crossmath.models.chat_protocol import (
    ChatRequestError,
    FixedSampling,
    completion,
    completion_events,
    read_chat_call,
)


@dataclass(frozen=True)
class FaultPlan:
    """Faults to inject, counted over chat requests in order of arrival (from 0).

    Request ``i`` is answered with ``fail_status`` when ``i < fail_first`` (with a
    ``Retry-After`` header when ``retry_after_s`` is set), and is held ``delay_s`` seconds
    before being answered when ``i < delay_first``.
    """

    fail_first: int = 0
    fail_status: int = 503
    retry_after_s: float | None = None
    delay_first: int = 0
    delay_s: float = 0.0


async def _hold(seconds: float, stopping: threading.Event) -> None:
    """Wait ``seconds``, or less if the server starts stopping."""
    deadline = time.monotonic() + seconds
    while not stopping.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))


def _error(status: int, message: str, kind: str, headers: dict | None = None,
           param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param,
                                   "code": status}},
                        status_code=status, headers=headers)


@dataclass
class _Pending:
    request: ModelRequest
    answer: asyncio.Future


class _Batcher:
    """Gathers requests that arrive together into one ``generate`` call, one call at a time."""

    def __init__(self, backend: Backend, max_batch_size: int, wait_s: float) -> None:
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()

    async def answer(self, request: ModelRequest) -> ModelResponse:
        pending = _Pending(request, asyncio.get_running_loop().create_future())
        await self.queue.put(pending)
        return await pending.answer

    async def run(self) -> None:
        while True:
            batch = await self._next_batch()
            requests = [item.request for item in batch]
            try:
                responses = await asyncio.to_thread(self.backend.generate, requests)
                if len(responses) != len(requests):
                    raise RuntimeError(f"backend gave {len(responses)} responses for "
                                       f"{len(requests)} requests")
            except Exception as error:  # noqa: BLE001 - every waiting request gets the error
                message = f"backend failed: {type(error).__name__}: {error}"
                responses = [ModelResponse(r.request_id, "", error=message) for r in requests]
            for item, response in zip(batch, responses):
                if not item.answer.done():  # the client may have gone
                    item.answer.set_result(response)

    async def _next_batch(self) -> list[_Pending]:
        batch = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                batch.append(self.queue.get_nowait() if remaining <= 0 else
                             await asyncio.wait_for(self.queue.get(), remaining))
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
        return batch


def create_app(
    backend: Backend,
    *,
    served_model_name: str | None = None,
    api_key: str | None = None,
    max_batch_size: int = 8,
    batch_wait_s: float = 0.01,
    faults: FaultPlan = FaultPlan(),
    sampling: FixedSampling | None = None,
) -> FastAPI:
    """The FastAPI app serving ``backend`` as ``served_model_name`` (its name by default).

    With ``api_key`` set, every request must carry ``Authorization: Bearer <api_key>``.
    ``temperature``, ``top_p`` and ``top_k`` are honoured per request by a backend that says
    ``request_sampling`` (the hf backend); any other decodes as it was configured, and accepts
    them at its own values only (``sampling``, read off the backend by default).
    """
    sampling = sampling or FixedSampling.of(backend)
    per_request = bool(getattr(backend, "request_sampling", False))
    model_name = served_model_name or backend.name
    batcher = _Batcher(backend, max_batch_size, batch_wait_s)
    arrivals = 0

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    async def require_key(request: Request) -> None:
        if api_key is not None:
            sent = request.headers.get("authorization", "")
            if not secrets.compare_digest(sent.encode(), f"Bearer {api_key}".encode()):
                raise HTTPException(401, "missing or wrong API key")

    app = FastAPI(title="crossmath chat-completions server", lifespan=lifespan,
                  dependencies=[Depends(require_key)])
    # Set when the server stops, so that requests held by a FaultPlan let it stop at once.
    app.state.stopping = threading.Event()

    @app.exception_handler(HTTPException)  # a wrong key, an unknown path or method
    async def openai_shaped_error(_: Request, error: HTTPException) -> JSONResponse:
        kind = {401: "authentication_error", 404: "not_found_error"}.get(
            error.status_code, "invalid_request_error")
        return _error(error.status_code, str(error.detail), kind, error.headers)

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list",
                "data": [{"id": model_name, "object": "model", "owned_by": "crossmath"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        nonlocal arrivals
        arrival, arrivals = arrivals, arrivals + 1
        if arrival < faults.fail_first:
            headers = ({"Retry-After": f"{faults.retry_after_s:g}"}
                       if faults.retry_after_s is not None else None)
            return _error(faults.fail_status, f"injected failure of request {arrival}",
                          "injected_fault", headers)
        try:
            body = await request.json()  # before any hold: the client may leave meanwhile
        except ValueError:
            return _error(400, "body is not valid JSON", "invalid_request_error")
        if arrival < faults.delay_first:
            await _hold(faults.delay_s, app.state.stopping)
        if isinstance(body, dict) and body.get("model") not in (None, model_name):
            return _error(404, f"model {body.get('model')!r} is not served here; "
                          f"this server serves {model_name!r}", "not_found_error")
        try:
            call = read_chat_call(body, sampling, per_request=per_request)
        except ChatRequestError as error:
            return _error(400, str(error), "invalid_request_error", param=error.param)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        identity = call.identity(request.headers.get("x-request-id") or completion_id)
        responses = [call.stopped(response) for response in await asyncio.gather(
            *(batcher.answer(r) for r in call.requests(identity)))]
        failed = [r.error for r in responses if r.error is not None]
        if failed:
            return _error(500, failed[0], "server_error")
        created = int(time.time())
        if call.stream:
            events = completion_events(completion_id, created, model_name, responses,
                                       call.include_usage)
            return StreamingResponse(events, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return completion(completion_id, created, model_name, responses)

    return app


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields its base URL (``http://host:port/v1``).

    Port 0 takes a free ephemeral port. On exit, requests held by a ``FaultPlan`` are let go
    so that the server stops at once.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="chat-server", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the chat server stopped while starting")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}/v1"
    finally:
        stopping = getattr(app.state, "stopping", None)
        if stopping is not None:
            stopping.set()
        server.should_exit = True
        thread.join()
        sock.close()
