"""The OpenAI chat-completions protocol as crossmath's server speaks it: bodies in, answers out.

A body is read into a ``ChatCall``: the prompt (the last and only user turn, answered as written:
its text parts and images become the request's ``Prompt`` in order) and the options, each either
honoured or refused with a ``ChatRequestError`` naming the parameter (a 400). Nothing a client
asks for is silently dropped; docs/serving.md lists what is honoured, refused and ignored.

A call becomes ``n`` ``ModelRequest``s, one per choice. Their identity, which keys a sampling
backend's randomness, comes from the client's ``seed`` and the prompt when a seed is given (the
same seed and prompt give the same answers), else from the client's ``X-Request-Id`` header,
else from a fresh id. Choice ``i`` of an identity is the same whatever ``n`` is.

Answers go back as one ``chat.completion`` object or, with ``stream``, as server-sent events of
``chat.completion.chunk`` objects ending in ``data: [DONE]``; both carry the same text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

from PIL import Image

from crossmath.models.base import (
    ModelRequest,
    ModelResponse,
    Prompt,
    RequestSampling,
    first_stop,
)

MAX_CHOICES = 128  # as OpenAI's API

MAX_STOPS = 4  # as OpenAI's API

# Read and honoured.
HONOURED = frozenset({"model", "messages", "stream", "stream_options", "max_tokens",
                      "max_completion_tokens", "n", "seed", "temperature", "top_p", "stop",
                      # vLLM's extensions, which clients of vLLM send (docs/vllm.md):
                      "top_k", "chat_template_kwargs"})
# Accepted and ignored: they change nothing in the answer.
IGNORED = frozenset({"user"})
# Accepted only at values that change nothing (what a client sends when it means "off").
NEUTRAL = {"frequency_penalty": (0,), "presence_penalty": (0,), "logprobs": (False,)}

_DATA_URL = re.compile(r"data:image/[a-z+.-]+;base64,(?P<data>.*)", re.DOTALL)


class ChatRequestError(ValueError):
    """A chat request the server will not answer as asked (a 400); ``param`` names the part
    of the body at fault, as OpenAI's errors do."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class FixedSampling:
    """How a backend decodes, which requests cannot change: ``temperature`` 0 is greedy,
    ``top_k`` 0 is no cut, ``enable_thinking`` None a chat template without the switch."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    enable_thinking: bool | None = None

    @classmethod
    def of(cls, backend: Any) -> "FixedSampling":
        """From a backend's decoding rule (``HFBackend.rule``) and thinking switch; a backend
        without a sampling rule (greedy, or rule-based) answers deterministically: temperature 0."""
        settings = getattr(getattr(backend, "rule", None), "sampling", None)
        thinking = getattr(backend, "enable_thinking", None)
        if settings is None:
            return cls(enable_thinking=thinking)
        return cls(settings.temperature, settings.top_p, settings.top_k, thinking)


@dataclass(frozen=True)
class ChatCall:
    """One chat-completions body, read and checked."""

    prompt: Prompt
    n: int = 1
    max_tokens: int | None = None
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False
    sampling: RequestSampling | None = None  # the request's own; None: the backend's
    stop: tuple[str, ...] = ()

    @property
    def grid(self) -> str:
        """The markdown table in the prompt's text, if any: the puzzle, for rule-based
        backends (the oracle) that read a grid instead of a prompt."""
        return markdown_table_in("\n".join(self.prompt.texts))

    def identity(self, fallback: str) -> str:
        """Whose answers these are: the seed and the prompt when a seed is given, else
        ``fallback`` (the client's request id, or a fresh one)."""
        if self.seed is None:
            return fallback
        digest = hashlib.sha256(f"{self.seed}\x00".encode())
        for part in self.prompt.parts():
            data = part.encode("utf-8") if isinstance(part, str) else part
            digest.update(b"T" if isinstance(part, str) else b"I")
            digest.update(len(data).to_bytes(8, "big") + data)
        return f"seed-{self.seed}-{digest.hexdigest()[:24]}"

    def requests(self, identity: str) -> list[ModelRequest]:
        """The ``n`` requests of this call, choice ``i`` as sample ``i``."""
        grid = self.grid
        modality = "text" if not self.prompt.images else "hybrid" if grid else "image"
        return [ModelRequest(request_id=choice_id(identity, i), prompt=self.prompt, sample=i,
                             max_new_tokens=self.max_tokens, modality=modality,
                             grid_markdown=grid, n_blanks=grid.count("?"),
                             sampling=self.sampling, stop=self.stop)
                for i in range(self.n)]

    def stopped(self, response: ModelResponse) -> ModelResponse:
        """``response`` ended where the first stop string begins (for backends that do not
        apply ``stop`` themselves; a no-op on those that do)."""
        cut = first_stop(response.output, self.stop) if self.stop else None
        if cut is None:
            return response
        return replace(response, output=response.output[:cut], finish_reason="stop")


def choice_id(identity: str, index: int) -> str:
    """The request id of choice ``index``: the identity itself for the first, so that a client's
    own request id reaches the backend unchanged when it asks for one answer."""
    return identity if index == 0 else f"{identity}/{index}"


def read_chat_call(body: Any, sampling: FixedSampling = FixedSampling(), *,
                   per_request: bool = False) -> ChatCall:
    """A checked ``ChatCall``; raises ``ChatRequestError`` for anything it will not honour.

    ``per_request``: the backend honours each request's own ``temperature``, ``top_p`` and
    ``top_k`` (the hf backend does); otherwise they are accepted at ``sampling``'s values only.
    """
    if not isinstance(body, dict):
        raise ChatRequestError("body must be a JSON object")
    _refuse_unsupported(body)
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise ChatRequestError("stream_options is only allowed with stream=true",
                               "stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage"}):
        raise ChatRequestError("stream_options may hold include_usage only", "stream_options")
    _check_thinking(body, sampling)
    return ChatCall(
        prompt=prompt_from_messages(body.get("messages")),
        n=_whole(body, "n", 1, MAX_CHOICES) or 1,
        max_tokens=_max_tokens(body),
        seed=_whole(body, "seed", -(2**63), 2**63 - 1),
        stream=stream,
        include_usage=_flag(options or {}, "include_usage", "stream_options.include_usage"),
        sampling=_request_sampling(body, sampling, per_request),
        stop=_stops(body),
    )


def prompt_from_messages(messages: Any) -> Prompt:
    """The prompt of a ``messages`` list holding one user turn: its parts, in order."""
    if not isinstance(messages, list):
        raise ChatRequestError("'messages' must be a list", "messages")
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if roles != ["user"]:
        raise ChatRequestError(
            f"messages must hold exactly one user message (got roles {roles}): this server "
            "answers a single user turn as written, with no system or earlier turns", "messages")
    content = messages[0].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise ChatRequestError("the user message's content must be a string or a list of parts",
                               "messages[0].content")
    texts: list[str] = []
    images: list[bytes] = []
    image_at: list[int] = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_image_of(part, index))
            image_at.append(len(texts))
        else:
            raise ChatRequestError(f"content part {index}: expected a text or image_url part",
                                   f"messages[0].content[{index}]")
    if not texts and not images:
        raise ChatRequestError("the user message is empty", "messages[0].content")
    return Prompt(tuple(texts), tuple(images), tuple(image_at))


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


# --- answers --------------------------------------------------------------------------------


def finish_reason(response: ModelResponse) -> str:
    """The response's finish reason; a backend that cannot tell (rule-based) ended its answer."""
    return response.finish_reason or "stop"


def usage(responses: Sequence[ModelResponse]) -> dict[str, int]:
    """Token counts of one call: the prompt once, the completions of every choice."""
    prompt = responses[0].n_prompt_tokens if responses else 0
    completion = sum(r.n_output_tokens for r in responses)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def completion(completion_id: str, created: int, model: str,
               responses: Sequence[ModelResponse]) -> dict[str, Any]:
    """The ``chat.completion`` object answering a call."""
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": i, "finish_reason": finish_reason(r), "logprobs": None,
                     "message": {"role": "assistant", "content": r.output}}
                    for i, r in enumerate(responses)],
        "usage": usage(responses),
    }


def completion_events(completion_id: str, created: int, model: str,
                      responses: Sequence[ModelResponse], include_usage: bool) -> Iterator[str]:
    """The same answer as server-sent events: per choice a role chunk, a content chunk and a
    chunk with the finish reason; then the usage (when asked for) and ``[DONE]``."""

    def event(choices: list[dict], **extra: Any) -> str:
        chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                 "model": model, "choices": choices, **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    for i, response in enumerate(responses):
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""},
                      "finish_reason": None}])
        if response.output:
            yield event([{"index": i, "delta": {"content": response.output},
                          "finish_reason": None}])
        yield event([{"index": i, "delta": {}, "finish_reason": finish_reason(response)}])
    if include_usage:
        yield event([], usage=usage(responses))
    yield "data: [DONE]\n\n"


# --- checks of single parameters ------------------------------------------------------------


def _refuse_unsupported(body: dict) -> None:
    unknown = sorted(set(body) - HONOURED - IGNORED - set(NEUTRAL))
    if unknown:
        raise ChatRequestError(
            f"unsupported parameter(s): {', '.join(unknown)} (this server honours "
            f"{', '.join(sorted(HONOURED))})", unknown[0])
    for name, accepted in NEUTRAL.items():
        if name in body and body[name] not in accepted:
            raise ChatRequestError(f"{name} is not supported (only {json.dumps(accepted[0])} is "
                                   f"accepted), got {json.dumps(body[name])}", name)


def _flag(body: dict, name: str, param: str | None = None) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ChatRequestError(f"{param or name} must be true or false, got {json.dumps(value)}",
                               param or name)
    return value


def _whole(body: dict, name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ChatRequestError(f"{name} must be a whole number from {low} to {high}, "
                               f"got {json.dumps(value)}", name)
    return value


def _max_tokens(body: dict) -> int | None:
    """``max_completion_tokens`` (the current name) or ``max_tokens``; both must agree."""
    values = {name: _whole(body, name, 1, 2**31 - 1)
              for name in ("max_completion_tokens", "max_tokens")}
    given = {name: value for name, value in values.items() if value is not None}
    if len(set(given.values())) > 1:
        raise ChatRequestError("max_tokens and max_completion_tokens disagree; send one",
                               "max_tokens")
    return next(iter(given.values()), None)


def _request_sampling(body: dict, sampling: FixedSampling,
                      per_request: bool) -> RequestSampling | None:
    """The request's own ``temperature``, ``top_p`` and ``top_k``, checked; None when it sets
    none. A backend that decodes one fixed way accepts them at its own values only."""
    given = {}
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
                or (name == "top_p" and value == 0):
            interval = "from 0 to 2" if name == "temperature" else "in (0, 1]"
            raise ChatRequestError(f"{name} must be a number {interval}, got {json.dumps(value)}",
                                   name)
        given[name] = float(value)
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < -1:
            raise ChatRequestError(f"top_k must be a whole number >= -1 (-1 or 0: no cut), got "
                                   f"{json.dumps(top_k)}", "top_k")
        given["top_k"] = top_k
    if not given:
        return None
    if not per_request:
        _check_fixed(given, sampling)
        return None
    return RequestSampling(**given)


def _check_fixed(given: dict, sampling: FixedSampling) -> None:
    """A backend that cannot decode a request its own way: each value must be its own."""
    how = "decodes greedily" if sampling.temperature == 0 else (
        f"samples at temperature {sampling.temperature:g}, top_p {sampling.top_p:g}")
    for name, fixed in (("temperature", sampling.temperature), ("top_p", sampling.top_p)):
        value = given.get(name)
        if value is not None and not math.isclose(value, fixed, rel_tol=1e-9, abs_tol=1e-9):
            raise ChatRequestError(
                f"{name}={value:g} cannot be honoured: this server's backend {how} whatever a "
                f"request asks; send {name}={fixed:g} or leave it out", name)
    top_k = given.get("top_k")
    if top_k is not None and max(0, top_k) != sampling.top_k:
        raise ChatRequestError(f"top_k={top_k} cannot be honoured: this server's backend uses "
                               f"top_k {sampling.top_k} (0: none) whatever a request asks", "top_k")


def _stops(body: dict) -> tuple[str, ...]:
    """``stop``: a string or a list of up to ``MAX_STOPS`` non-empty strings."""
    stop = body.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(
            isinstance(item, str) and item for item in stops):
        raise ChatRequestError(f"stop must be a string or a list of up to {MAX_STOPS} non-empty "
                               f"strings, got {json.dumps(stop)}", "stop")
    return tuple(stops)


def _check_thinking(body: dict, sampling: FixedSampling) -> None:
    """vLLM's ``chat_template_kwargs.enable_thinking``, at the backend's value: the chat
    template is the backend's. A template without a thinking switch never thinks, so
    ``enable_thinking: false`` is accepted there too."""
    kwargs = body.get("chat_template_kwargs")
    if kwargs is None:
        return
    if not isinstance(kwargs, dict) or set(kwargs) - {"enable_thinking"}:
        raise ChatRequestError("chat_template_kwargs may hold enable_thinking only",
                               "chat_template_kwargs")
    thinking = kwargs.get("enable_thinking")
    if thinking is not None and thinking != sampling.enable_thinking and not (
            sampling.enable_thinking is None and thinking is False):
        raise ChatRequestError(f"enable_thinking={json.dumps(thinking)} cannot be honoured: the "
                               f"backend's chat template runs with enable_thinking="
                               f"{json.dumps(sampling.enable_thinking)}", "chat_template_kwargs")


def _image_of(part: dict, index: int) -> bytes:
    """The bytes of an inline image part, checked to be an image Pillow can decode."""
    param = f"messages[0].content[{index}]"
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    match = _DATA_URL.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise ChatRequestError(f"content part {index}: image_url must be a base64 data URL "
                               "(this server fetches nothing)", param)
    try:
        data = base64.b64decode(match["data"], validate=True)
    except binascii.Error as error:
        raise ChatRequestError(f"content part {index}: bad base64 image data ({error})",
                               param) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as error:  # noqa: BLE001 - whatever Pillow raises, the image is at fault
        raise ChatRequestError(f"content part {index}: the image cannot be decoded "
                               f"({type(error).__name__}: {error})", param) from None
    return data
