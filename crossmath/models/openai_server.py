"""A small OpenAI-compatible chat-completions server around any ``Backend``.

It lets the openai client be tested over real HTTP against a real model (the tiny random
VLM through the hf backend) without vLLM, and lets a laptop demo serve a local model:

    python -m crossmath.serve model=tiny-random server.port=8000

Each ``POST /v1/chat/completions`` is read back into a ``ModelRequest``: the data-URL image
is decoded, the markdown table in the text (if any) becomes the grid, and the modality
follows from which of the two are there. The backend then prompts its model with its own
prompt set, as it would in the pipeline; the client's wording is not passed through.
Requests that arrive close together are answered in one ``generate`` call (up to
``max_batch_size``), one batch at a time.

For tests, ``FaultPlan`` makes the server fail its first requests (a 5xx, or a 429 with
``Retry-After``) or hold them before answering, so retries and timeouts meet real sockets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from crossmath.models.base import Backend, ModelRequest, ModelResponse, Prompt

_DATA_URL = re.compile(r"data:image/[a-z+.-]+;base64,(?P<data>.*)", re.DOTALL)


class ChatRequestError(ValueError):
    """A chat request the server cannot turn into a puzzle request (answered with a 400)."""


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


def request_from_chat(body: Any, request_id: str) -> ModelRequest:
    """The request inside an OpenAI chat body: its last user message, answered as written.

    The client's text parts and images become the prompt in their order. The markdown table in
    the text (if any) is also read as the puzzle grid, for rule-based backends (the oracle).
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise ChatRequestError("body must be a JSON object with a 'messages' list")
    users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ChatRequestError("'messages' has no user message")
    content = users[-1].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise ChatRequestError("the user message's 'content' must be a string or a list of parts")
    texts: list[str] = []
    images: list[bytes] = []
    image_at: list[int] = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_decode_image_part(part, index))
            image_at.append(len(texts))
        else:
            raise ChatRequestError(f"content part {index}: expected a text or image_url part")
    if not texts and not images:
        raise ChatRequestError("the user message is empty")
    grid = markdown_table_in("\n".join(texts))
    modality = "text" if not images else "hybrid" if grid else "image"
    return ModelRequest(request_id=request_id, prompt=Prompt(tuple(texts), tuple(images),
                                                             tuple(image_at)),
                        modality=modality, grid_markdown=grid, n_blanks=grid.count("?"))


def _decode_image_part(part: dict, index: int) -> bytes:
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    match = _DATA_URL.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise ChatRequestError(
            f"content part {index}: image_url must be a base64 data URL (this server "
            "fetches nothing)"
        )
    try:
        return base64.b64decode(match["data"], validate=True)
    except binascii.Error as error:
        raise ChatRequestError(f"content part {index}: bad base64 image data ({error})") from None


def markdown_table_in(text: str) -> str:
    """The first run of markdown table rows (lines starting and ending with ``|``) in text."""
    rows: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if len(stripped) >= 2 and stripped.startswith("|") and stripped.endswith("|"):
            rows.append(stripped)
        elif rows:
            break
    return "\n".join(rows)


async def _hold(seconds: float, stopping: threading.Event) -> None:
    """Wait ``seconds``, or less if the server starts stopping."""
    deadline = time.monotonic() + seconds
    while not stopping.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))


def _error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}},
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
) -> FastAPI:
    """The FastAPI app serving ``backend`` as ``served_model_name`` (its name by default).

    With ``api_key`` set, every request must carry ``Authorization: Bearer <api_key>``.
    Sampling options in the body are ignored: the backend's own configuration decides them.
    """
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
        if isinstance(body, dict) and body.get("n", 1) != 1:
            return _error(400, "only n=1 is supported", "invalid_request_error")
        request_id = request.headers.get("x-request-id") or f"chatcmpl-{uuid.uuid4().hex}"
        try:
            model_request = request_from_chat(body, request_id)
        except ChatRequestError as error:
            return _error(400, str(error), "invalid_request_error")
        response = await batcher.answer(model_request)
        if response.error is not None:
            return _error(500, response.error, "server_error")
        return {
            "id": request_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": response.output}}],
            "usage": {"prompt_tokens": response.n_prompt_tokens,
                      "completion_tokens": response.n_output_tokens,
                      "total_tokens": response.n_prompt_tokens + response.n_output_tokens},
        }

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
