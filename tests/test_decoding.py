"""The decode loop on tiny Qwen2.5-VL and Qwen3-VL: it decodes what transformers' ``generate``
decodes, shared prefill equals separate prefill, a static cache equals a growing one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hf_models import NoStop, build_tiny_qwen3_vl, official_requests

from crossmath.models import kv_cache
from crossmath.models.base import ModelRequest, Prompt
from crossmath.models.checkpoint_loading import load_pretrained_model
from crossmath.models.decoding import Decoder, RowPlan
from crossmath.models.hf import chat_prompt_text, decode_png
from crossmath.models.kv_cache import StaticKV, size_bucket
from crossmath.models.processor import load_processor
from crossmath.models.sampling import SeededSampler, sequence_key
from crossmath.models.sampling_modes import DecodingRule
from crossmath.models.sampling_settings import SamplingSettings
from crossmath.models.tiny import build_tiny_random

N_NEW = 10
SAMPLED = DecodingRule(SamplingSettings(temperature=1.0))
GREEDY = DecodingRule(None)


class TinyModel:
    """A tiny checkpoint's model and processor, and the processor inputs of given prompts."""

    def __init__(self, folder: Path) -> None:
        self.processor = load_processor(folder)
        self.model = load_pretrained_model(folder, torch.float32, "sdpa_gqa").eval()
        self.stop_ids = [self.model.generation_config.eos_token_id]

    def inputs(self, requests) -> dict[str, torch.Tensor]:
        texts = [chat_prompt_text(self.processor, r.prompt, None) for r in requests]
        images = [decode_png(png) for r in requests for png in r.prompt.images]
        return self.processor(text=texts, images=images or None, padding=True, padding_side="left",
                              return_tensors="pt")

    def decoder(self, rule: DecodingRule = GREEDY, **options) -> Decoder:
        return Decoder(self.model, self.stop_ids, rule, **options)


@pytest.fixture(scope="module")
def qwen25(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return TinyModel(build_tiny_random(tmp_path_factory.getbasetemp() / "models"))


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory: pytest.TempPathFactory, qwen25: TinyModel) -> TinyModel:
    tiny = build_tiny_random(tmp_path_factory.getbasetemp() / "models")
    return TinyModel(build_tiny_qwen3_vl(tiny, tmp_path_factory.mktemp("qwen3-vl") / "model"))


@pytest.fixture(params=["qwen2.5-vl", "qwen3-vl"])
def tiny(request) -> TinyModel:
    return request.getfixturevalue({"qwen2.5-vl": "qwen25", "qwen3-vl": "qwen3"}[request.param])


@pytest.fixture(scope="module")
def requests(official_jsonl: Path):
    """Text, image and hybrid prompts of different lengths and image sizes (left padding)."""
    return official_requests(official_jsonl, 5)


def _tokens(outputs) -> list[list[int]]:
    return [output.tokens for output in outputs]


@pytest.mark.slow
def test_greedy_decoding_is_what_generate_decodes(tiny: TinyModel, requests) -> None:
    inputs = tiny.inputs(requests)
    assert inputs["attention_mask"].sum(dim=1).unique().numel() >= 3  # left padding
    expected = tiny.model.generate(**inputs, max_new_tokens=N_NEW, do_sample=False, top_k=None,
                                   repetition_penalty=1.0, pad_token_id=tiny.stop_ids[0])
    expected = expected[:, inputs["input_ids"].shape[1]:].tolist()
    outputs, _ = tiny.decoder().decode(inputs, [RowPlan(i, N_NEW) for i in range(len(requests))])
    for row, output in zip(expected, outputs):
        ended = next((i + 1 for i, t in enumerate(row) if t in tiny.stop_ids), len(row))
        assert output.tokens == row[:ended]
        assert output.stopped == (ended < len(row) or row[-1] in tiny.stop_ids)


def test_repetition_penalty_is_transformers_own(qwen25: TinyModel, requests) -> None:
    """On an unpadded prompt (transformers also penalizes the padding token of padded rows,
    which would make a row depend on its batch; the loop counts real tokens only)."""
    inputs = qwen25.inputs(requests[2:3])
    expected = qwen25.model.generate(**inputs, max_new_tokens=N_NEW, do_sample=False, top_k=None,
                                     repetition_penalty=1.3, pad_token_id=qwen25.stop_ids[0])
    plain, _ = qwen25.decoder().decode(inputs, [RowPlan(0, N_NEW)])
    penalized, _ = qwen25.decoder(DecodingRule(None, 1.3)).decode(inputs, [RowPlan(0, N_NEW)])
    assert penalized[0].tokens == expected[0, inputs["input_ids"].shape[1]:].tolist()[:N_NEW]
    assert penalized[0].tokens != plain[0].tokens


@pytest.mark.slow
@pytest.mark.parametrize("rule", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_shared_prefill_equals_separate_prefill(tiny: TinyModel, requests, rule) -> None:
    """Three samples of each of five prompts: one prefill per prompt, expanded, against one
    prefill per row (transformers' expand-then-prefill)."""
    n = 3
    keys = [sequence_key(0, f"{r.request_id}/s{s}") for r in requests for s in range(n)]
    shared = [RowPlan(i // n, N_NEW, key) for i, key in enumerate(keys)]
    separate = [RowPlan(i, N_NEW, key) for i, key in enumerate(keys)]
    one_each, stats = tiny.decoder(rule).decode(tiny.inputs(requests), shared)
    assert stats.prompts == 5 and stats.rows == 15
    repeated = [r for r in requests for _ in range(n)]
    expected, _ = tiny.decoder(rule).decode(tiny.inputs(repeated), separate)
    assert _tokens(one_each) == _tokens(expected)
    if rule.is_sampled:  # the samples of a prompt differ
        assert len({tuple(t) for t in _tokens(one_each)[:n]}) > 1


@pytest.mark.slow
def test_static_cache_equals_growing_cache(qwen25: TinyModel, monkeypatch) -> None:
    """Sampled rows of caps 3 to 60 from two short prompts: the static cache moves to fewer slots as
    rows finish and to a longer bucket as the longest rows grow (its floor lowered from 256
    tokens, so that this happens within a short decode), and nothing changes."""
    monkeypatch.setattr(kv_cache, "MIN_STATIC_LENGTH", 16)
    copies: list[tuple[int, int]] = []  # (slots, capacity) of every static cache built
    real_copy = StaticKV._copy

    def copy(self, source, slots, length, capacity):
        copies.append((len(slots), capacity))
        return real_copy(self, source, slots, length, capacity)

    monkeypatch.setattr(StaticKV, "_copy", copy)
    inputs = qwen25.inputs([ModelRequest("short", Prompt(("2 + 3?",))),
                            ModelRequest("longer", Prompt(("what is 2 + 3, and why?",)))])
    caps = [3, 20, 60, 7, 60]
    rows = [RowPlan(i % 2, cap, sequence_key(1, str(i))) for i, cap in enumerate(caps)]
    no_stop = {"logits_processor_factory": lambda: [NoStop(qwen25.stop_ids)]}
    growing, _ = qwen25.decoder(SAMPLED, **no_stop).decode(inputs, rows)
    static, stats = qwen25.decoder(SAMPLED, kv_cache="static", **no_stop).decode(inputs, rows)
    assert [len(t) for t in _tokens(growing)] == caps
    assert _tokens(static) == _tokens(growing)
    slots = [s for s, _ in copies]
    capacities = [c for _, c in copies]
    assert slots[0] == size_bucket(5) == 6 and min(slots) == 2  # fewer slots as rows finish
    assert capacities[0] < inputs["input_ids"].shape[1] + 60 <= max(capacities)  # a longer bucket
    assert stats.slot_steps < len(rows) * max(caps)


def test_rows_leave_the_batch_when_they_end(qwen25: TinyModel, requests) -> None:
    inputs = qwen25.inputs(requests[:2])
    rows = [RowPlan(0, 2), RowPlan(1, 5), RowPlan(1, 9)]
    outputs, stats = qwen25.decoder(
        logits_processor_factory=lambda: [NoStop(qwen25.stop_ids)]).decode(inputs, rows)
    assert [len(o.tokens) for o in outputs] == [2, 5, 9] and not any(o.stopped for o in outputs)
    assert stats.steps == 9 and stats.slot_steps == 2 + 5 + 9


def test_size_buckets_waste_at_most_a_third() -> None:
    assert [size_bucket(n) for n in range(1, 14)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16]
    assert size_bucket(10, minimum=256) == 256 and size_bucket(300, minimum=256) == 384
    for n in range(1, 5000):
        bucket = size_bucket(n)
        assert n <= bucket and 3 * bucket <= 4.5 * n + 3


def test_compile_needs_a_static_cache(qwen25: TinyModel) -> None:
    with pytest.raises(ValueError, match="compile needs kv_cache: static"):
        qwen25.decoder(compile=True)


def test_an_unknown_kv_cache_is_refused_when_the_decoder_is_built(qwen25: TinyModel) -> None:
    with pytest.raises(ValueError, match="kv_cache must be one of"):
        qwen25.decoder(kv_cache="paged")


class LogitsRecorder:
    """A logits processor that keeps each step's logits as they come from the model."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(scores.clone())
        return scores


def test_a_peft_model_decodes_with_its_adapters(qwen25: TinyModel, requests) -> None:
    """GRPO's LoRA policy, passed as the peft model: every step's logits are those ``generate``
    computes (image prompts get the multimodal rope of its base model; a tiny random model's
    tokens would hardly show a wrong position), its adapters act, and ``disable_adapter`` gives
    the base model's tokens."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base_model = load_pretrained_model(Path(qwen25.model.name_or_path), torch.float32, "sdpa_gqa")
    policy = get_peft_model(base_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()
    for module in policy.modules():
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.2)
    inputs = qwen25.inputs(requests)
    assert "image_grid_thw" in inputs
    keys = [sequence_key(3, r.request_id) for r in requests]
    rows = [RowPlan(i, N_NEW, key) for i, key in enumerate(keys)]
    prompt_length = inputs["input_ids"].shape[1]
    no_stop = NoStop(qwen25.stop_ids)
    sampler = SeededSampler(torch.tensor(keys), prompt_length, SAMPLED.sampling)
    expected = policy.generate(**inputs, max_new_tokens=N_NEW, do_sample=False, top_k=None,
                               logits_processor=[no_stop, sampler], repetition_penalty=1.0,
                               pad_token_id=qwen25.stop_ids[0], output_logits=True,
                               return_dict_in_generate=True)
    recorder = LogitsRecorder()
    adapted, _ = Decoder(policy, qwen25.stop_ids, SAMPLED,
                         logits_processor_factory=lambda: [recorder, no_stop]).decode(inputs, rows)
    assert _tokens(adapted) == expected.sequences[:, prompt_length:].tolist()
    assert len(recorder.steps) == len(expected.logits) == N_NEW
    shown = torch.ones(expected.logits[0].shape[-1], dtype=torch.bool)
    shown[qwen25.stop_ids] = False  # generate's logits are those NoStop then edited in place
    for ours, theirs in zip(recorder.steps, expected.logits):
        assert torch.allclose(ours[:, shown], theirs[:, shown], atol=1e-4)
    with policy.disable_adapter():
        disabled, _ = Decoder(policy, qwen25.stop_ids, SAMPLED).decode(inputs, rows)
    base, _ = qwen25.decoder(SAMPLED).decode(inputs, rows)
    assert _tokens(disabled) == _tokens(base) != _tokens(adapted)
