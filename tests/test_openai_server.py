"""The chat server against the official ``openai`` client, over real HTTP on 127.0.0.1.

The backends are test doubles (``tests.doubles.WordsBackend``) that talk like a model: one token
per word, token caps honoured, greedy or keyed sampling; so what the client gets can be checked
word for word. docs/serving.md describes the behaviour tested here.
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
from typing import Iterator, Sequence

import openai
import pytest
from PIL import Image

from crossmath.models.base import ModelRequest, ModelResponse, RequestSampling
from crossmath.models.chat_protocol import (
    FixedSampling,
    completion_events,
)
from crossmath.models.openai_server import create_app, serve_in_thread
from tests.doubles import BrokenBackend, WordsBackend

QUESTION = [{"role": "user", "content": "Say something."}]


class Recording:
    """Wraps a backend and keeps every request the server handed it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.rule = getattr(inner, "rule", None)
        self.request_sampling = getattr(inner, "request_sampling", False)
        self.seen: list[ModelRequest] = []
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        with self._lock:
            self.seen += requests
        return self.inner.generate(requests)


@contextlib.contextmanager
def openai_client(backend, **app_options) -> Iterator[openai.OpenAI]:
    with serve_in_thread(create_app(backend, **app_options)) as base_url:
        with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0,
                           timeout=30) as client:
            yield client


def ask(client: openai.OpenAI, **options):
    if "top_k" in options:  # vLLM's extension, outside the official client's parameters
        options["extra_body"] = {"top_k": options.pop("top_k")}
    return client.chat.completions.create(model="words", messages=QUESTION, **options)


def streamed(client: openai.OpenAI, **options) -> list:
    return list(ask(client, stream=True, **options))


def png(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_part(data: bytes) -> dict:
    return {"type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}}


# --- streaming ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sampling", [False, True])
def test_streamed_and_whole_answers_agree(sampling):
    backend = WordsBackend(sampling="config" if sampling else "greedy")
    with openai_client(backend) as client:
        whole = ask(client, seed=5)
        chunks = streamed(client, seed=5, stream_options={"include_usage": True})
    [choice] = whole.choices
    assert len(choice.message.content.split()) == 12 and choice.finish_reason == "stop"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert {c.id for c in chunks} == {chunks[0].id} and all(c.model == "words" for c in chunks)


def test_a_stream_is_server_sent_events_ending_in_done():
    events = list(completion_events("id-1", 0, "m", [ModelResponse("r", "hi", 2, 1)],
                                    include_usage=False))
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    assert events[-1] == "data: [DONE]\n\n" and len(events) == 4  # role, content, finish, done


# --- max_tokens -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cap", ["max_tokens", "max_completion_tokens"])
def test_a_token_cap_cuts_the_answer_and_says_length(cap):
    with openai_client(WordsBackend()) as client:
        whole = ask(client, **{cap: 3})
        chunks = streamed(client, **{cap: 3})
        roomy = ask(client, **{cap: 50})
    [choice] = whole.choices
    assert len(choice.message.content.split()) == 3 and whole.usage.completion_tokens == 3
    assert choice.finish_reason == "length"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "length"
    assert roomy.choices[0].finish_reason == "stop"
    assert roomy.choices[0].message.content.startswith(choice.message.content)


@pytest.mark.slow
def test_the_cap_reaches_the_backend_as_the_requests_own_limit():
    backend = Recording(WordsBackend())
    with openai_client(backend) as client:
        ask(client, max_tokens=7)
        ask(client)
    assert [r.max_new_tokens for r in backend.seen] == [7, None]


@pytest.mark.slow
@pytest.mark.parametrize("options, param", [
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 3, "max_completion_tokens": 4}, "max_tokens"),
    ({"n": 0}, "n"),
    ({"n": 129}, "n"),
    ({"seed": "seven"}, "seed"),
])
def test_out_of_range_options_are_refused_naming_them(options, param):
    with openai_client(WordsBackend()) as client, pytest.raises(openai.BadRequestError) as caught:
        ask(client, **options)
    assert caught.value.status_code == 400 and caught.value.param == param
    assert param in caught.value.message


# --- n and seed -----------------------------------------------------------------------------


@pytest.mark.slow
def test_n_asks_n_samples_and_answers_n_choices():
    backend = Recording(WordsBackend(sampling="config"))
    with openai_client(backend) as client:
        three = ask(client, n=3, seed=11)
        one = ask(client, seed=11)
        chunks = streamed(client, n=3, seed=11)
    assert [c.index for c in three.choices] == [0, 1, 2]
    texts = [c.message.content for c in three.choices]
    assert len(set(texts)) == 3  # keyed sampling: each choice its own draw
    assert one.choices[0].message.content == texts[0]  # choice i does not depend on n
    assert three.usage.completion_tokens == 36 and three.usage.prompt_tokens == 2
    by_choice = {i: "".join(c.choices[0].delta.content or "" for c in chunks
                            if c.choices and c.choices[0].index == i) for i in range(3)}
    assert list(by_choice.values()) == texts
    first_call = backend.seen[:3]
    assert [r.sample for r in first_call] == [0, 1, 2]
    assert len({r.request_id for r in first_call}) == 3


@pytest.mark.slow
def test_a_seed_makes_the_answer_a_function_of_seed_and_prompt():
    with openai_client(WordsBackend(sampling="config")) as client:
        first, again = ask(client, seed=3), ask(client, seed=3)
        other_seed = ask(client, seed=4)
        other_prompt = client.chat.completions.create(
            model="words", seed=3, messages=[{"role": "user", "content": "Say more."}])
        unseeded = [ask(client).choices[0].message.content for _ in range(2)]
    text = first.choices[0].message.content
    assert again.choices[0].message.content == text
    assert other_seed.choices[0].message.content != text
    assert other_prompt.choices[0].message.content != text
    assert unseeded[0] != unseeded[1]  # no seed: a fresh identity, a fresh draw


@pytest.mark.slow
def test_without_a_seed_the_clients_request_id_is_the_identity():
    backend = Recording(WordsBackend(sampling="config"))
    with openai_client(backend) as client:
        ask(client, extra_headers={"X-Request-Id": "puzzle-7/text/0"})
        ask(client, n=2, extra_headers={"X-Request-Id": "puzzle-7/text/0"})
    assert [r.request_id for r in backend.seen] == [
        "puzzle-7/text/0", "puzzle-7/text/0", "puzzle-7/text/0/1"]


# --- temperature, top_p, top_k and stop ----------------------------------------------------


@pytest.mark.slow
def test_a_backend_that_decodes_one_way_accepts_only_its_own_settings():
    with openai_client(WordsBackend()) as greedy:
        assert ask(greedy, temperature=0, top_p=1, top_k=-1).choices[0].finish_reason == "stop"
        with pytest.raises(openai.BadRequestError) as hot:
            ask(greedy, temperature=0.7)
        with pytest.raises(openai.BadRequestError) as nucleus:
            ask(greedy, top_p=0.9)
    assert hot.value.param == "temperature" and "greedily" in hot.value.message
    assert nucleus.value.param == "top_p"
    with openai_client(WordsBackend(sampling="config", temperature=0.8, top_p=0.95)) as sampler:
        assert ask(sampler, temperature=0.8, top_p=0.95).choices
        with pytest.raises(openai.BadRequestError) as cold:
            ask(sampler, temperature=0)
    assert cold.value.param == "temperature" and "temperature 0.8" in cold.value.message


@pytest.mark.slow
def test_each_request_decodes_its_own_way_on_a_backend_that_can():
    backend = Recording(WordsBackend(sampling="config", temperature=1.0, request_sampling=True))
    with openai_client(backend) as client:
        greedy = ask(client, temperature=0, n=3, seed=1)
        sampled = ask(client, temperature=0.7, top_p=0.9, top_k=20, n=3, seed=1)
        again = ask(client, temperature=0.7, top_p=0.9, top_k=20, n=3, seed=1)
        default = ask(client, n=3, seed=1)
    assert len({c.message.content for c in greedy.choices}) == 1  # temperature 0 is greedy
    assert len({c.message.content for c in sampled.choices}) == 3
    assert [c.message.content for c in again.choices] == [c.message.content for c in sampled.choices]
    assert [c.message.content for c in default.choices] != [c.message.content for c in sampled.choices]
    assert backend.seen[0].sampling == RequestSampling(temperature=0.0)
    assert backend.seen[3].sampling == RequestSampling(temperature=0.7, top_p=0.9, top_k=20)
    assert backend.seen[-1].sampling is None  # unset: the backend's own


def test_fixed_sampling_is_read_off_the_backend():
    assert FixedSampling.of(WordsBackend()) == FixedSampling(0.0, 1.0)
    assert FixedSampling.of(WordsBackend(sampling="config", temperature=0.6, top_p=0.9)) == \
        FixedSampling(0.6, 0.9)
    assert FixedSampling.of(BrokenBackend()) == FixedSampling(0.0, 1.0)  # rule-based


@pytest.mark.slow
@pytest.mark.parametrize("options, param", [
    ({"temperature": 2.5}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_k": -2}, "top_k"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"stop": [""]}, "stop"), ({"stop": 3}, "stop"),
])
def test_sampling_and_stop_values_out_of_range_are_refused(options, param):
    with openai_client(WordsBackend(request_sampling=True)) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            ask(client, **options)
    assert refused.value.param == param


@pytest.mark.slow
def test_stop_ends_the_answer_where_a_stop_string_begins():
    with openai_client(WordsBackend()) as client:
        whole = ask(client).choices[0].message.content
        words = whole.split()
        cut = ask(client, stop=[words[3], "never said"]).choices[0]
        alone = ask(client, stop=words[3]).choices[0]
    assert cut.message.content == whole[:whole.index(words[3])]
    assert cut.finish_reason == "stop" and alone.message.content == cut.message.content


# --- other parameters -----------------------------------------------------------------------


@pytest.mark.slow
def test_unsupported_parameters_are_refused_naming_them_and_harmless_ones_accepted():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with openai_client(WordsBackend()) as client:
        with pytest.raises(openai.BadRequestError) as tools:
            ask(client, tools=[tool])
        with pytest.raises(openai.BadRequestError) as penalty:
            ask(client, frequency_penalty=0.5)
        with pytest.raises(openai.BadRequestError) as logprobs:
            ask(client, logprobs=True)
        accepted = ask(client, frequency_penalty=0, presence_penalty=0, logprobs=False,
                       user="someone", stop=[])
    assert tools.value.param == "tools" and "tools" in tools.value.message
    assert penalty.value.param == "frequency_penalty"
    assert logprobs.value.param == "logprobs"
    assert accepted.choices[0].finish_reason == "stop"


# --- the real hf backend ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_tiny_hf_model_behind_the_server_honours_caps_streams_and_seeds(tiny_model_config):
    """The tiny Qwen2.5-VL (sampling at temperature 1) served and asked by the official client:
    a cap of 3 tokens is kept and reported, a stream joins to the same text, a seed repeats."""
    import hydra.utils

    from crossmath.models.config import backend_arguments

    backend = hydra.utils.instantiate(backend_arguments(tiny_model_config))
    assert FixedSampling.of(backend) == FixedSampling(1.0, 1.0)
    with openai_client(backend) as client:
        capped = client.chat.completions.create(model=backend.name, messages=QUESTION,
                                                max_tokens=3, seed=7)
        assert capped.usage.completion_tokens <= 3
        assert capped.choices[0].finish_reason == "length"
        chunks = list(client.chat.completions.create(model=backend.name, messages=QUESTION,
                                                     max_tokens=3, seed=7, stream=True))
        joined = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert joined == capped.choices[0].message.content
        other = client.chat.completions.create(model=backend.name, messages=QUESTION,
                                               max_tokens=12, seed=8, n=3)
        texts = [choice.message.content for choice in other.choices]
        assert len(set(texts)) > 1  # samples of one prompt differ
        greedy = client.chat.completions.create(model=backend.name, messages=QUESTION,
                                                max_tokens=6, temperature=0, n=2)
        assert greedy.choices[0].message.content == greedy.choices[1].message.content
        answer = greedy.choices[0].message.content
        stop = answer[len(answer) // 2:len(answer) // 2 + 2]
        stopped = client.chat.completions.create(model=backend.name, messages=QUESTION,
                                                 max_tokens=6, temperature=0, stop=stop)
        assert stopped.choices[0].message.content == answer[:answer.index(stop)]
        assert stopped.choices[0].finish_reason == "stop"
        assert stopped.usage.completion_tokens <= greedy.usage.completion_tokens // 2
