"""The OpenAI-compatible client against our own chat server, over real HTTP on 127.0.0.1.

Every test starts a real server on an ephemeral port (``serve_in_thread``) around a real
backend, and stops it on exit. Faults (5xx, 429 with Retry-After, held requests) are injected
by the server, so the client's retries and timeouts meet real sockets.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

import pytest
import requests
from conftest import REPO_ROOT
from hydra.utils import instantiate
from omegaconf import OmegaConf

from crossmath.models.base import ModelRequest, ModelResponse, Prompt
from crossmath.models.baselines import OracleBackend
from crossmath.models.chat_protocol import ChatRequestError, read_chat_call
from crossmath.models.config import backend_arguments
from crossmath.models.openai_backend import (
    OpenAIChatBackend,
    openai_messages,
    retry_after_s,
)
from crossmath.models.openai_server import FaultPlan, create_app, serve_in_thread
from crossmath.models.prompts import puzzle_request
from crossmath.models.sampling import sequence_key
from crossmath.puzzle.grid import parse_markdown_grid
from crossmath.puzzle.records import OfficialRecord, read_official_jsonl

ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
PNG = b"\x89PNG\r\n\x1a\n not really an image"


def answer_of(output: str) -> list[str] | None:
    found = ANSWER.findall(output)
    return found[-1].split() if found else None


class RecordingBackend:
    """A real backend (the oracle) that also keeps the batches the server handed it."""

    def __init__(self) -> None:
        self.inner = OracleBackend()
        self.name = "oracle"
        self.batches: list[list[ModelRequest]] = []
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        with self._lock:
            self.batches.append(list(requests))
        return self.inner.generate(requests)

    @property
    def seen(self) -> list[ModelRequest]:
        return [request for batch in self.batches for request in batch]


@contextlib.contextmanager
def running(backend=None, **app_options) -> Iterator[str]:
    with serve_in_thread(create_app(backend or OracleBackend(), **app_options)) as base_url:
        yield base_url


def client(base_url: str, **options) -> OpenAIChatBackend:
    """A client with waits short enough for tests; a test passes what it checks."""
    defaults = dict(model="oracle", timeout_s=10, max_retries=0, max_concurrency=4,
                    backoff_base_s=0.01, backoff_max_s=5.0)
    return OpenAIChatBackend(base_url=base_url, **{**defaults, **options})


def record_sleeps(backend: OpenAIChatBackend) -> list[float]:
    """Have the client report each wait before a retry (and still wait it)."""
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    backend._sleep = sleep
    return sleeps


@pytest.fixture(scope="module")
def records(official_jsonl: Path) -> list[OfficialRecord]:
    return read_official_jsonl(official_jsonl)


def request_for(record: OfficialRecord, modality: str) -> ModelRequest:
    return puzzle_request(
        f"{record.name}/{modality}", modality, record.fields["markdown_table"],
        image=None if modality == "text" else record.image_blank_path.read_bytes(),
        n_blanks=len(record.grid().blanks), value_range=tuple(record.fields["range"]),
    )


def small_requests(n: int) -> list[ModelRequest]:
    """Uniquely solvable one-equation grids: request i answers i + 2."""
    return [puzzle_request(f"r{i}", "text", f"| ? | + | 3 | = | {i + 5} |") for i in range(n)]


# --- the happy path -----------------------------------------------------------------------


@pytest.mark.slow
def test_sample_through_http_matches_the_backend_called_directly(records):
    requests_ = [request_for(r, m) for r in records for m in ("text", "image", "hybrid")]
    backend = RecordingBackend()
    with running(backend) as base_url, client(base_url) as remote:
        over_http = remote.generate(requests_)
    assert [r.request_id for r in over_http] == [r.request_id for r in requests_]
    assert all(r.error is None for r in over_http)
    direct = OracleBackend().generate(requests_)
    assert [r.output for r in over_http] == [r.output for r in direct]
    for record, response in zip(records, over_http[::3]):
        assert answer_of(response.output) == record.answer_tokens()

    # The server rebuilt each request faithfully: id (header), the prompt as sent, modality, grid.
    seen = {request.request_id: request for request in backend.seen}
    assert set(seen) == {r.request_id for r in requests_}
    for sent in requests_:
        got = seen[sent.request_id]
        assert got.modality == sent.modality
        assert got.prompt == sent.prompt
        if sent.modality == "image":
            assert got.grid_markdown == ""  # the image prompt carries no text grid
        else:
            assert parse_markdown_grid(got.grid_markdown) == parse_markdown_grid(
                sent.grid_markdown)


@pytest.mark.slow
def test_server_batches_requests_that_arrive_together():
    backend = RecordingBackend()
    many = small_requests(24)
    with running(backend, max_batch_size=5, batch_wait_s=0.05) as base_url:
        with client(base_url, max_concurrency=8) as remote:
            responses = remote.generate(many)
    assert [answer_of(r.output) for r in responses] == [[str(i + 2)] for i in range(24)]
    sizes = [len(batch) for batch in backend.batches]
    assert sum(sizes) == 24 and max(sizes) <= 5


def test_request_body_and_messages_carry_the_image_as_a_data_url():
    remote = client("http://127.0.0.1:9/v1", seed=11, extra_body={"top_k": 5})
    body = remote.request_body(puzzle_request("h", "hybrid", "| ? | + | 3 | = | 5 |",
                                              image=PNG, sample=2))
    assert body["model"] == "oracle" and body["top_k"] == 5
    assert body["seed"] == sequence_key(11, "h") % 2**31  # the seed of the request's identity
    [message] = body["messages"]
    image_part, text_part = message["content"]
    assert image_part["type"] == "image_url"
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == PNG
    assert text_part["type"] == "text" and "| ? | + | 3 | = | 5 |" in text_part["text"]
    text_only = openai_messages(Prompt(("just words",)))
    assert text_only == [{"role": "user", "content": [{"type": "text", "text": "just words"}]}]
    remote.close()


def test_each_request_sends_the_seed_of_its_own_identity():
    """The seed follows (config seed, request id) only: not the batch, the order or a resume."""
    asked = [puzzle_request(f"p/s{s}", "text", "| ? | + | 3 | = | 5 |", sample=s) for s in range(4)]
    with client("http://127.0.0.1:9/v1", seed=3) as remote:
        seeds = [remote.request_body(r)["seed"] for r in asked]
        assert [remote.request_body(r)["seed"] for r in reversed(asked)] == seeds[::-1]
    assert len(set(seeds)) == 4 and all(0 <= seed < 2**31 for seed in seeds)
    with client("http://127.0.0.1:9/v1", seed=4) as other:
        assert other.request_body(asked[0])["seed"] != seeds[0]
    with client("http://127.0.0.1:9/v1", seed=None) as unseeded:
        assert "seed" not in unseeded.request_body(asked[0])


@pytest.mark.slow
def test_client_against_the_tiny_hf_model_served_over_http(records, tmp_path_factory):
    """The real path end to end: tiny Qwen2.5-VL in the hf backend (built by Hydra from its
    shipped config), behind the server, asked by the client; it must say exactly what the
    backend says when called directly, with the same token counts."""
    cfg = OmegaConf.load(REPO_ROOT / "conf" / "model" / "tiny-random.yaml")
    cfg.model.cache_dir = str(tmp_path_factory.getbasetemp() / "models")  # shared with other tests
    cfg.max_new_tokens = 8
    backend = instantiate(backend_arguments(OmegaConf.to_container(cfg)))
    requests_ = [request_for(r, m) for r in records[:2] for m in ("text", "image", "hybrid")]
    # One request per generate call on both sides, so the comparison needs no batch invariance.
    with running(backend, max_batch_size=1) as base_url:
        with client(base_url, model="tiny-random", max_concurrency=2, temperature=1.0) as remote:
            over_http = remote.generate(requests_)
    direct = [backend.generate([request])[0] for request in requests_]
    assert all(r.error is None for r in over_http), [r.error for r in over_http]
    assert [r.request_id for r in over_http] == [r.request_id for r in requests_]
    assert [r.output for r in over_http] == [r.output for r in direct]
    assert [(r.n_prompt_tokens, r.n_output_tokens) for r in over_http] == [
        (r.n_prompt_tokens, r.n_output_tokens) for r in direct]
    assert all(0 < r.n_output_tokens <= 8 and r.latency_s > 0 for r in over_http)
    text, image, hybrid = over_http[:3]
    assert hybrid.n_prompt_tokens > text.n_prompt_tokens  # the image's tokens came through
    assert image.n_prompt_tokens > 0


# --- retries, timeouts, errors ------------------------------------------------------------


@pytest.mark.slow
def test_a_5xx_is_retried_with_backoff_until_it_succeeds():
    with running(faults=FaultPlan(fail_first=2, fail_status=503)) as base_url:
        with client(base_url, max_retries=3, backoff_base_s=0.02) as remote:
            sleeps = record_sleeps(remote)
            [response] = remote.generate(small_requests(1))
    assert response.error is None and answer_of(response.output) == ["2"]
    # Exponential with jitter in the upper half: [0.01, 0.02] then [0.02, 0.04].
    assert len(sleeps) == 2
    assert 0.01 <= sleeps[0] <= 0.02 and 0.02 <= sleeps[1] <= 0.04


@pytest.mark.slow
def test_a_5xx_that_outlasts_the_retries_is_an_error_on_that_request_only():
    with running(faults=FaultPlan(fail_first=3, fail_status=500)) as base_url:
        with client(base_url, max_retries=2, max_concurrency=1) as remote:
            responses = remote.generate(small_requests(3))
    first, *rest = responses
    assert first.output == "" and "HTTP 500" in first.error and "after 3 attempts" in first.error
    assert [answer_of(r.output) for r in rest] == [["3"], ["4"]]
    assert all(r.error is None for r in rest)


@pytest.mark.slow
def test_a_429_waits_as_long_as_retry_after_says():
    with running(faults=FaultPlan(fail_first=1, fail_status=429, retry_after_s=0.25)) as url:
        with client(url, max_retries=1, backoff_base_s=5.0) as remote:
            sleeps = record_sleeps(remote)
            [response] = remote.generate(small_requests(1))
    assert response.error is None and answer_of(response.output) == ["2"]
    assert sleeps == [0.25]  # the server's wait, not the (much longer) backoff


@pytest.mark.slow
def test_a_timeout_is_an_error_and_loses_no_other_request():
    held = FaultPlan(delay_first=1, delay_s=60)
    with running(faults=held) as base_url:
        with client(base_url, timeout_s=1.0, max_retries=0, max_concurrency=1) as remote:
            responses = remote.generate(small_requests(4))
    first, *rest = responses
    assert first.output == "" and "timed out" in first.error
    assert [answer_of(r.output) for r in rest] == [["3"], ["4"], ["5"]]
    assert [r.request_id for r in responses] == ["r0", "r1", "r2", "r3"]


@pytest.mark.slow
def test_a_timed_out_request_is_retried():
    with running(faults=FaultPlan(delay_first=1, delay_s=60)) as base_url:
        with client(base_url, timeout_s=1.0, max_retries=1, max_concurrency=1) as remote:
            responses = remote.generate(small_requests(2))
    assert [answer_of(r.output) for r in responses] == [["2"], ["3"]]


@pytest.mark.slow
def test_a_refused_connection_is_retried_then_reported():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with client(f"http://127.0.0.1:{port}/v1", max_retries=2) as remote:
        sleeps = record_sleeps(remote)
        [response] = remote.generate(small_requests(1))
    assert "connection failed" in response.error and "after 3 attempts" in response.error
    assert len(sleeps) == 2


@pytest.mark.slow
def test_a_client_error_is_not_retried():
    with running() as base_url, client(base_url, model="not-served", max_retries=3) as remote:
        sleeps = record_sleeps(remote)
        [response] = remote.generate(small_requests(1))
    assert "HTTP 404" in response.error and "not-served" in response.error
    assert sleeps == []


# --- the API key --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_api_key_comes_from_the_environment_as_a_bearer_token(monkeypatch):
    monkeypatch.setenv("CROSSMATH_TEST_KEY", "s3cret-key")
    with running(api_key="s3cret-key") as base_url:
        with client(base_url, api_key_env="CROSSMATH_TEST_KEY", max_retries=2) as remote:
            [ok] = remote.generate(small_requests(1))
        with client(base_url, max_retries=2) as keyless:
            sleeps = record_sleeps(keyless)
            [refused] = keyless.generate(small_requests(1))
        monkeypatch.setenv("CROSSMATH_TEST_KEY", "wrong-key")
        with client(base_url, api_key_env="CROSSMATH_TEST_KEY") as wrong:
            [wrong_key] = wrong.generate(small_requests(1))
        models = requests.get(f"{base_url}/models",
                              headers={"Authorization": "Bearer s3cret-key"}, timeout=10)
    assert ok.error is None and answer_of(ok.output) == ["2"]
    assert "HTTP 401" in refused.error and sleeps == []
    assert "HTTP 401" in wrong_key.error
    assert models.json()["data"][0]["id"] == "oracle"


def test_a_missing_key_variable_fails_at_construction(monkeypatch):
    monkeypatch.delenv("CROSSMATH_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="CROSSMATH_TEST_KEY"):
        client("http://127.0.0.1:9/v1", api_key_env="CROSSMATH_TEST_KEY")


# --- pieces -------------------------------------------------------------------------------


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_s({"retry-after": soon}) <= 30
    assert retry_after_s({"retry-after": "whenever"}) is None
    assert retry_after_s({}) is None


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"messages": []}, "exactly one user message"),
        ({"messages": [{"role": "user", "content": []}]}, "empty"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}]},
         "base64 data URL"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]},
         "bad base64"),
        ([1, 2], "JSON object"),
    ],
)
def test_the_server_rejects_chat_bodies_it_cannot_read(body, reason):
    with pytest.raises(ChatRequestError, match=reason):
        read_chat_call(body)


@pytest.mark.slow
def test_the_server_answers_an_unreadable_body_with_a_400():
    with running() as base_url:
        reply = requests.post(f"{base_url}/chat/completions", timeout=10,
                              json={"messages": [{"role": "user", "content": []}]})
    assert reply.status_code == 400
    assert "empty" in reply.json()["error"]["message"]


def test_the_openai_config_instantiates_a_client():
    cfg = OmegaConf.load(REPO_ROOT / "conf" / "model" / "openai.yaml")
    cfg.model = "some/model"
    cfg.extra_body = {"chat_template_kwargs": {"enable_thinking": False}}
    with instantiate(backend_arguments(OmegaConf.to_container(cfg))) as backend:
        assert isinstance(backend, OpenAIChatBackend)
        assert backend.name == "some/model"
        body = backend.request_body(small_requests(1)[0])
    assert type(body["chat_template_kwargs"]) is dict
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "Authorization" not in backend._headers
