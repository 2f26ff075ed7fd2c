"""The main job with ``model=openai`` against an OpenAI-compatible server (ours, standing in for
``vllm serve``): the release protocol's sampling settings reach the server with every request,
and the answers come back into the run's predictions and scores (docs/vllm.md)."""

from __future__ import annotations

import json

import pytest
from fastapi import Request

from crossmath.models.base import TEXT_STYLE
from crossmath.models.baselines import OracleBackend
from crossmath.models.chat_protocol import FixedSampling
from crossmath.models.openai_backend import request_seed
from crossmath.models.openai_server import create_app, serve_in_thread
from crossmath.pipeline.evaluation import run_evaluation as evaluate

# What docs/vllm.md tells a user to pass for the release's protocol (Qwen3.5-9B): sampling as
# the checkpoint's generation config says, 16384 new tokens, thinking off, a seed per request.
RELEASE_PROTOCOL = (
    "model.temperature=0.7", "model.top_p=0.8", "model.max_tokens=16384", "model.seed=1234",
    "++model.extra_body={top_k: 20, chat_template_kwargs: {enable_thinking: false}}",
)


@pytest.mark.slow
def test_main_job_against_a_chat_server_passes_the_release_protocol(ray_local, run_config):
    # served as "oracle", standing in for a vLLM that samples as the release protocol says
    app = create_app(OracleBackend(), sampling=FixedSampling(0.7, 0.8, 20, False))
    bodies: list[dict] = []
    request_ids: list[str] = []

    @app.middleware("http")
    async def keep_body(request: Request, call_next):
        if request.url.path.endswith("/chat/completions"):
            bodies.append(json.loads(await request.body()))
            request_ids.append(request.headers["x-request-id"])
        return await call_next(request)

    with serve_in_thread(app) as base_url:
        outcome = evaluate(run_config("model=openai", f"model.base_url={base_url}",
                                      "model.model=oracle", *RELEASE_PROTOCOL, "data.n=2",
                                      "samples=2", "styles=[original]", "resources.infer_cpus=0.5"))

    n_requests = 2 * (1 + 2) * 2  # puzzles x (text + image, hybrid in one style) x samples
    assert outcome.n_requests == n_requests == len(bodies)
    assert all(error is None for error in outcome.predictions.column("error").to_pylist())
    ev = outcome.evaluation
    assert ev.group("oracle", "text", TEXT_STYLE).macro.mean == 100.0  # read off the prompt
    assert ev.group("oracle", "hybrid", "original").macro.mean == 100.0
    assert ev.group("oracle", "image", "original").macro.mean == 0.0  # the oracle cannot see
    for body in bodies:
        assert body["model"] == "oracle"
        assert (body["temperature"], body["top_p"], body["top_k"]) == (0.7, 0.8, 20)
        assert body["max_tokens"] == 16384
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
    # each request's own seed, from the run's seed and the request's identity only
    assert [body["seed"] for body in bodies] == [request_seed(1234, rid) for rid in request_ids]
    assert len({body["seed"] for body in bodies}) == len(bodies)
    images = [part for body in bodies for part in body["messages"][0]["content"]
              if part["type"] == "image_url"]
    assert len(images) == 2 * 2 * 2  # image and hybrid requests, inline PNGs
    assert all(part["image_url"]["url"].startswith("data:image/png;base64,") for part in images)
