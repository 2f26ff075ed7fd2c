"""A client for OpenAI-compatible chat-completions servers: vLLM, SGLang, hosted models.

Each request becomes one ``POST {base_url}/chat/completions`` with the request's prompt: its
text parts and images in order, each image inline as a ``data:image/png;base64,...`` URL. Up to
``max_concurrency`` requests are in flight at once (a thread pool; the work is waiting on
sockets). A request that meets a timeout, a dropped connection, a 429 or a 5xx is retried
with exponential backoff and jitter, waiting as long as the server's ``Retry-After`` asks;
one that still fails gets ``error`` set and empty output, and the rest of the batch goes on.
Any other 4xx is the server refusing the request as it is: final, not retried, its error a
``base.refusal`` naming the status and the server's reason.

Uses ``requests`` (no ``openai`` package): the protocol is one JSON POST.
"""

from __future__ import annotations

import base64
import email.utils
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from requests import Session
from requests import exceptions as http_errors

from crossmath.models.base import ModelRequest, ModelResponse, Prompt, refusal
from crossmath.models.contract import BackendContract
from crossmath.models.prompts import chat_messages
from crossmath.models.sequence_keys import sequence_key

# Worth another try: request timeout, conflict (both used by load balancers), rate limit, and
# every server-side failure. Any other 4xx means the request itself is wrong.
RETRYABLE_STATUS = frozenset({408, 409, 429})
_ERROR_BODY_CHARS = 300


def greedy_at_zero_temperature(arguments: Mapping[str, Any],
                               checkpoint_generation: Mapping[str, Any] | None = None) -> bool:
    """A server asked for temperature 0 answers every sample alike."""
    return float(arguments["temperature"]) == 0.0


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def openai_messages(prompt: Prompt) -> list[dict[str, Any]]:
    """The prompt as one user turn of OpenAI chat content parts, images as inline data URLs."""
    return chat_messages(prompt, lambda png: {"type": "image_url",
                                              "image_url": {"url": png_data_url(png)}})


def request_seed(seed: int, request_id: str) -> int:
    """The seed sent for one request: its sequence key (``crossmath.models.sampling``) folded
    to the non-negative 31-bit range every server accepts."""
    return sequence_key(seed, request_id) % 2**31


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds a server asks us to wait: ``retry-after-ms``, or ``Retry-After`` in seconds or
    as an HTTP date; None when it asks nothing readable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class _Failure:
    """Why one attempt failed, and whether another attempt could succeed."""

    message: str
    retryable: bool
    wait_s: float | None = None  # what the server asked for, if it did


class OpenAIChatBackend:
    """The ``Backend`` for any server that speaks the OpenAI chat-completions API.

    ``api_key_env`` names the environment variable holding the key (the key itself never
    goes in a config); when it is set the variable must exist, and its value is sent as a
    Bearer token. ``timeout_s`` bounds connecting and each wait for data, per attempt.
    ``seed``, when set, becomes each request's own seed, ``request_seed(seed, request_id)``:
    a sample's seed depends on its identity only (never on batching, order or resumes), the
    rule the hf backend follows. Servers honour seeds best-effort (vLLM per request; hosted
    APIs may not at all), so that is the most a client can do for reproducibility. ``extra_body`` is merged into every request, for
    server-specific options such as vLLM's ``chat_template_kwargs``.
    """

    contract = BackendContract(
        call_sequences="max_concurrency", answer_tokens="max_tokens",
        non_shaping=frozenset({
            "max_concurrency",  # requests in flight at once
            "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s",  # HTTP retries
            "api_key_env",  # where the API key is read from
        }),
        greedy=greedy_at_zero_temperature)
    _sleep = staticmethod(time.sleep)  # replaced in tests to observe the waits

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        name: str | None = None,
        api_key_env: str | None = None,
        max_tokens: int = 4096,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 5,
        max_concurrency: int = 8,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        self.name = name or model
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.sampling = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
        self.seed = seed
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.extra_body = dict(extra_body or {})
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(
                    f"api_key_env names {api_key_env!r}, but that environment variable is "
                    "not set (or empty) in this process"
                )
            self._headers["Authorization"] = f"Bearer {key}"
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="openai-client")
        self._local = threading.local()
        self._jitter = random.Random()

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        return list(self._pool.map(self._answer_safely, requests))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "OpenAIChatBackend":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body for one request; raises ``ValueError`` if the request is unusable."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(request.prompt),
            **self.sampling,
        }
        if request.max_new_tokens is not None:
            body["max_tokens"] = min(body["max_tokens"], request.max_new_tokens)
        if self.seed is not None:
            body["seed"] = request_seed(self.seed, request.request_id)
        body.update(self.extra_body)
        return body

    def _answer_safely(self, request: ModelRequest) -> ModelResponse:
        """One request's response whatever happens: a bug here must not sink the batch."""
        try:
            return self._answer(request)
        except Exception as error:  # noqa: BLE001 - recorded on the request, batch goes on
            return ModelResponse(request.request_id, "", error=f"{type(error).__name__}: {error}")

    def _answer(self, request: ModelRequest) -> ModelResponse:
        try:
            body = self.request_body(request)
        except ValueError as error:
            return ModelResponse(request.request_id, "", error=f"bad request: {error}")
        headers = {**self._headers, "X-Request-Id": request.request_id}
        attempt = 0
        while True:
            started = time.perf_counter()
            outcome = self._post(body, headers)
            latency_s = time.perf_counter() - started  # of the last attempt: the model's time
            if not isinstance(outcome, _Failure):
                return _response_from(request.request_id, outcome, latency_s)
            if not outcome.retryable or attempt == self.max_retries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                return ModelResponse(request.request_id, "", latency_s=latency_s,
                                     error=outcome.message + tries)
            self._sleep(self._wait_before_retry(attempt, outcome.wait_s))
            attempt += 1

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any] | _Failure:
        try:
            reply = self._session().post(self.url, json=body, headers=headers,
                                         timeout=self.timeout_s)
        except http_errors.Timeout:
            return _Failure(f"timed out after {self.timeout_s:g} s", retryable=True)
        except (http_errors.ConnectionError, http_errors.ChunkedEncodingError) as error:
            return _Failure(f"connection failed: {error}", retryable=True)
        except http_errors.RequestException as error:
            return _Failure(f"request failed: {error}", retryable=False)
        if reply.status_code != 200:
            detail = reply.text[:_ERROR_BODY_CHARS]
            if reply.status_code in RETRYABLE_STATUS or reply.status_code >= 500:
                return _Failure(f"HTTP {reply.status_code}: {detail}", retryable=True,
                                wait_s=retry_after_s(reply.headers))
            return _Failure(refusal(reply.status_code, detail), retryable=False)
        try:
            payload = reply.json()
        except ValueError:
            return _Failure(f"response is not JSON: {reply.text[:_ERROR_BODY_CHARS]!r}", False)
        if not isinstance(payload, dict):
            return _Failure(f"response is not a JSON object: {payload!r:.{_ERROR_BODY_CHARS}}",
                            False)
        return payload

    def _wait_before_retry(self, attempt: int, server_asks_s: float | None) -> float:
        """The server's ``Retry-After`` if it gave one, else exponential backoff with jitter
        (uniform in the upper half, so retries of a batch spread out); capped either way."""
        if server_asks_s is not None:
            return min(server_asks_s, self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        return self._jitter.uniform(ceiling / 2, ceiling)

    def _session(self) -> Session:
        """One session (and connection pool) per worker thread: sessions are not thread-safe."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = Session()
        return session


def _response_from(request_id: str, payload: dict[str, Any], latency_s: float) -> ModelResponse:
    """A ModelResponse from a chat completion; a reply without a message is an error."""
    try:
        choice = payload["choices"][0]
        content = choice["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ModelResponse(request_id, "", latency_s=latency_s,
                             error=f"response has no choices[0].message: {str(payload)[:300]}")
    usage = payload.get("usage") or {}
    return ModelResponse(
        request_id,
        content if isinstance(content, str) else "",
        n_prompt_tokens=int(usage.get("prompt_tokens") or 0),
        n_output_tokens=int(usage.get("completion_tokens") or 0),
        latency_s=latency_s,
        finish_reason=choice.get("finish_reason") if choice.get("finish_reason") in ("stop", "length")
        else None,
    )
