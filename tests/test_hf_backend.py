"""The hf backend on the tiny random Qwen2.5-VL: batching, keyed sampling, sampling modes,
per-request caps, out-of-memory recovery, adapters."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import hydra
import pytest
import torch
from hf_models import REPO, NoStop, build_tiny_qwen3_vl, official_requests, tiny_backend
from omegaconf import OmegaConf

from crossmath.models.attention import sdpa_gqa_attention_forward
from crossmath.models.base import ModelRequest
from crossmath.models.config import backend_arguments
from crossmath.models.hf import HFBackend
from crossmath.models.tiny import build_tiny_random

MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_random(tmp_path_factory.getbasetemp() / "models")


def _restored(backend: HFBackend):
    """The shared backend, with the settings a test may change put back afterwards."""
    saved = dict(vars(backend))
    yield backend
    vars(backend).update(saved)


@pytest.fixture(scope="module")
def module_sampled(tiny_path: Path) -> HFBackend:
    """The shipped tiny-random config as Hydra builds it: ``sampling: config``, temperature 1."""
    config = OmegaConf.load(REPO / "conf" / "model" / "tiny-random.yaml")
    config.model.cache_dir = str(tiny_path.parent)
    config.max_new_tokens = MAX_NEW_TOKENS
    return hydra.utils.instantiate(backend_arguments(OmegaConf.to_container(config)))


@pytest.fixture(scope="module")
def module_greedy(tiny_path: Path) -> HFBackend:
    return tiny_backend(tiny_path, sampling="greedy", max_new_tokens=MAX_NEW_TOKENS)


@pytest.fixture
def sampled(module_sampled: HFBackend) -> HFBackend:
    yield from _restored(module_sampled)


@pytest.fixture
def greedy(module_greedy: HFBackend) -> HFBackend:
    yield from _restored(module_greedy)


@pytest.fixture(scope="module")
def requests(official_jsonl: Path) -> list[ModelRequest]:
    """Nine real puzzles of the official sample, every modality, images of different sizes."""
    return official_requests(official_jsonl, 9)


def _samples(requests: list[ModelRequest], n: int) -> list[ModelRequest]:
    return [replace(r, request_id=f"{r.request_id}/s{s}", sample=s) for r in requests
            for s in range(n)]


def _answers(responses) -> list[tuple[str, str, int, int]]:
    return [(r.request_id, r.output, r.n_prompt_tokens, r.n_output_tokens) for r in responses]


def _record_batches(backend: HFBackend, monkeypatch, fail_above: int | None = None):
    """Record (prompts prefilled, rows decoded) of each batch; out of memory above a row count."""
    calls: list[tuple[int, int]] = []
    real = backend.decoder.decode

    def decode(inputs, rows):
        calls.append((len(inputs["input_ids"]), len(rows)))
        if fail_above is not None and len(rows) > fail_above:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(inputs, rows)

    monkeypatch.setattr(backend.decoder, "decode", decode)
    return calls


def test_config_builds_the_backend_on_the_tiny_folder(sampled: HFBackend, tiny_path: Path) -> None:
    assert isinstance(sampled, HFBackend)
    assert sampled.name == "tiny-random"
    assert sampled.model_path == str(tiny_path)
    described = sampled.describe()
    assert described["attn_implementation"] == "sdpa_gqa"
    assert sampled.model.config._attn_implementation == "sdpa_gqa"
    assert described["sampling"] == "config"
    assert described["decoding"] == {"do_sample": True, "temperature": 1.0, "top_k": 0,
                                     "top_p": 1.0, "repetition_penalty": 1.0}
    assert described["kv_cache"] == "dynamic" and described["compile"] is False


# -- keyed sampling: a sample's text depends on (seed, request id) only ----------------------
@pytest.mark.slow
def test_sampled_answers_do_not_depend_on_batching_order_or_resume(sampled: HFBackend, requests,
                                                                   tiny_path: Path) -> None:
    asked = _samples(requests[:3], 4)  # text, image, hybrid
    sampled.batch_size = 16
    together = {r.request_id: r for r in sampled.generate(asked)}
    assert all(r.error is None and r.n_output_tokens > 0 for r in together.values())
    for puzzle in range(3):  # the samples of a puzzle are not all equal
        assert len({together[a.request_id].output for a in asked[4 * puzzle:4 * puzzle + 4]}) > 1
    expected = [_answers([together[a.request_id]])[0] for a in asked]

    sampled.batch_size = 1
    assert _answers([sampled.generate([a])[0] for a in asked]) == expected
    sampled.batch_size = 16
    assert _answers(sampled.generate(asked[::-1])) == expected[::-1]
    halves = sampled.generate(asked[::2]) + sampled.generate(asked[1::2])  # samples split
    assert sorted(_answers(halves)) == sorted(expected)
    resumed = tiny_backend(tiny_path, max_new_tokens=MAX_NEW_TOKENS, batch_size=5)  # a new process
    assert _answers(resumed.generate(asked[7:])) == expected[7:]
    reseeded = tiny_backend(tiny_path, max_new_tokens=MAX_NEW_TOKENS, seed=1)
    assert [r.output for r in reseeded.generate(asked[:4])] != [e[1] for e in expected[:4]]


def test_samples_of_a_prompt_share_one_prefill(sampled: HFBackend, requests, monkeypatch) -> None:
    calls = _record_batches(sampled, monkeypatch)
    sampled.batch_size = 16
    asked = _samples(requests[:3], 4)
    answered = sampled.generate(asked)
    assert calls == [(3, 12)]  # three prompts prefilled, twelve rows decoded, one batch
    assert [r.request_id for r in answered] == [r.request_id for r in asked]


def test_greedy_samples_share_one_sequence(greedy: HFBackend, requests, monkeypatch) -> None:
    calls = _record_batches(greedy, monkeypatch)
    greedy.batch_size = 16
    asked = _samples(requests[:2], 3)
    responses = greedy.generate(asked)
    assert [r.request_id for r in responses] == [r.request_id for r in asked]
    assert calls == [(2, 2)]  # two prompts, one sequence each
    assert responses[0].output == responses[1].output == responses[2].output
    assert responses[3].output == responses[4].output == responses[5].output


@pytest.mark.slow
def test_greedy_answers_do_not_depend_on_batch_size_or_seed(greedy: HFBackend, requests,
                                                            tiny_path: Path) -> None:
    """Each request alone against mixed batches of 4 and 9 (left padding, varied image sizes)."""
    greedy.batch_size = 1
    alone = [greedy.generate([request])[0] for request in requests]
    assert len({r.n_prompt_tokens for r in alone}) >= 6  # the lengths really differ
    assert len({r.output for r in alone}) >= 3  # the model does not say the same thing always
    assert all(r.error is None and r.n_output_tokens > 0 for r in alone)
    for batch_size in (4, 9):
        greedy.batch_size = batch_size
        assert _answers(greedy.generate(requests)) == _answers(alone), f"batch size {batch_size}"
    other_seed = tiny_backend(tiny_path, sampling="greedy", max_new_tokens=MAX_NEW_TOKENS, seed=7)
    assert _answers(other_seed.generate(requests)) == _answers(alone)


@pytest.mark.slow
def test_sdpa_gqa_decodes_like_sdpa(tiny_path: Path, requests) -> None:
    reference = tiny_backend(tiny_path, sampling="greedy", attn_implementation="sdpa",
                             max_new_tokens=MAX_NEW_TOKENS, batch_size=9)
    grouped = tiny_backend(tiny_path, sampling="greedy", max_new_tokens=MAX_NEW_TOKENS, batch_size=9)
    assert _answers(grouped.generate(requests)) == _answers(reference.generate(requests))


@pytest.mark.parametrize("with_mask", [True, False])
def test_sdpa_gqa_matches_sdpa_numerically(with_mask: bool) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 4, True
    query = torch.randn(3, 8, 1, 16)
    key, value = torch.randn(3, 2, 10, 16), torch.randn(3, 2, 10, 16)
    mask = None
    if with_mask:  # left padding: row 1 starts 3 tokens late, row 2 one token late
        mask = torch.ones(3, 1, 1, 10, dtype=torch.bool)
        mask[1, ..., :3] = False
        mask[2, ..., :1] = False
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    got, _ = sdpa_gqa_attention_forward(module, query, key, value, mask, scaling=0.25)
    assert got.shape == expected.shape == (3, 1, 8, 16)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


# -- per-request caps ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["greedy", "config"])
def test_a_request_cap_cuts_the_answer_as_a_shorter_decode_would(tiny_path: Path, requests,
                                                                   sampling: str) -> None:
    """Caps 3, 7 and none (12) in one batch: each answer equals a backend whose own limit is
    that cap, ends with finish_reason "length", and a capped row stops costing compute."""
    stop: list[int] = []
    options = dict(sampling=sampling, batch_size=16, logits_processor_factory=lambda: [NoStop(stop)])
    long = tiny_backend(tiny_path, max_new_tokens=MAX_NEW_TOKENS, **options)
    stop += sorted(long.decoder.stop_ids)
    asked = [replace(requests[1], request_id="a", max_new_tokens=3),
             replace(requests[1], request_id="b", max_new_tokens=7),
             replace(requests[1], request_id="c", max_new_tokens=99),  # above the backend's own
             replace(requests[2], request_id="d", max_new_tokens=None)]
    got = long.generate(asked)
    assert [(r.n_output_tokens, r.finish_reason) for r in got] == [(3, "length"), (7, "length"),
                                                                   (12, "length"), (12, "length")]
    for request, response in zip(asked, got):
        cap = min(request.max_new_tokens or MAX_NEW_TOKENS, MAX_NEW_TOKENS)
        short = tiny_backend(tiny_path, max_new_tokens=cap, **options)
        assert short.generate([replace(request, max_new_tokens=None)])[0].output == response.output
    [stats] = long.last_stats
    rows = 4 if sampling == "config" else 2  # greedy: one row per prompt, cut per request
    assert stats.rows == rows and stats.steps == MAX_NEW_TOKENS
    # a finished row leaves the batch: only live rows are computed
    assert stats.slot_steps == (3 + 7 + 12 + 12 if sampling == "config" else 12 + 12)


def test_a_cap_below_one_is_that_request_error(sampled: HFBackend, requests) -> None:
    got = sampled.generate([replace(requests[0], request_id="zero", max_new_tokens=0), requests[1]])
    assert got[0].error and "max_new_tokens must be at least 1" in got[0].error
    assert got[1].error is None and got[1].n_output_tokens > 0


# -- failures --------------------------------------------------------------------------------
@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_loses_nothing(greedy: HFBackend, requests,
                                                          monkeypatch) -> None:
    greedy.batch_size = 9
    expected = _answers(greedy.generate(requests))
    calls = _record_batches(greedy, monkeypatch, fail_above=2)
    greedy.batch_size = 9
    got = greedy.generate(requests)
    assert [r.error for r in got] == [None] * len(requests)
    assert _answers(got) == expected
    assert greedy.batch_size == 2
    assert calls[0] == (9, 9) and calls[1] == (4, 4)  # failed at 9, failed at 4, then pairs
    assert all(rows <= 2 for _, rows in calls[2:])


def test_out_of_memory_of_a_single_sequence_is_that_request_error(greedy: HFBackend, requests,
                                                                  monkeypatch) -> None:
    _record_batches(greedy, monkeypatch, fail_above=0)
    greedy.batch_size = 1
    got = greedy.generate(requests[:2])
    assert all(r.error and "out of memory" in r.error and r.output == "" for r in got)


@pytest.mark.slow
def test_a_failing_prompt_is_isolated_and_the_rest_answers(sampled: HFBackend, requests,
                                                             monkeypatch) -> None:
    asked = _samples(requests[:4], 2)
    sampled.batch_size = 1
    alone = sampled.generate(asked)
    bad = alone[2].n_prompt_tokens  # the prompt of requests[1]
    assert [r.n_prompt_tokens for r in alone].count(bad) == 2
    real = sampled.decoder.decode

    def decode(inputs, rows):
        if (inputs["attention_mask"].sum(dim=1) == bad).any():
            raise RuntimeError("device-side assert (injected)")
        return real(inputs, rows)

    monkeypatch.setattr(sampled.decoder, "decode", decode)
    sampled.batch_size = 8
    got = sampled.generate(asked)
    assert [r.error for r in got[2:4]] == ["RuntimeError: device-side assert (injected)"] * 2
    assert got[2].output == got[3].output == ""
    assert _answers(got[:2] + got[4:]) == _answers(alone[:2] + alone[4:])


def test_bad_requests_get_errors_and_the_rest_answers(sampled: HFBackend, requests) -> None:
    broken_png = replace(requests[1], request_id="broken",
                         prompt=replace(requests[1].prompt, images=(b"not a png",)))
    good = requests[0]
    got = sampled.generate([broken_png, good])
    assert [r.request_id for r in got] == ["broken", good.request_id]
    assert got[0].error and "UnidentifiedImageError" in got[0].error
    assert got[1].error is None and got[1].n_output_tokens > 0


def test_no_requests_no_answers(sampled: HFBackend) -> None:
    assert sampled.generate([]) == []


# -- sampling modes ----------------------------------------------------------------------------
def _with_generation_config(tiny_path: Path, folder: Path, **fields) -> Path:
    """A copy of the tiny checkpoint whose generation_config.json ships ``fields``."""
    shutil.copytree(tiny_path, folder)
    path = folder / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))
    return folder


@pytest.mark.slow
def test_checkpoint_generation_defaults_do_not_leak(tiny_path: Path, tmp_path: Path, requests) -> None:
    """In greedy and config modes only the run's config shapes answers, not what a checkpoint's
    generation_config carries."""
    shipped = _with_generation_config(tiny_path, tmp_path / "shipped", do_sample=True, top_k=1,
                                      temperature=0.01, repetition_penalty=50.0)
    for sampling in ("greedy", "config"):
        plain = tiny_backend(tiny_path, sampling=sampling, max_new_tokens=MAX_NEW_TOKENS)
        other = tiny_backend(shipped, sampling=sampling, max_new_tokens=MAX_NEW_TOKENS)
        before = _answers(plain.generate(requests[:3]))
        assert [a[1:] for a in _answers(other.generate(requests[:3]))] == [a[1:] for a in before]
        penalized = tiny_backend(tiny_path, sampling=sampling, max_new_tokens=MAX_NEW_TOKENS,
                                 repetition_penalty=50.0)
        assert _answers(penalized.generate(requests[:3])) != before  # the option itself matters


def test_checkpoint_mode_samples_as_the_checkpoint_ships(tiny_path: Path, tmp_path: Path,
                                                         requests) -> None:
    shipped = {"do_sample": True, "temperature": 0.7, "top_k": 20, "top_p": 0.8,
               "repetition_penalty": 1.05}
    folder = _with_generation_config(tiny_path, tmp_path / "qwen3-like", **shipped)
    checkpoint = tiny_backend(folder, sampling="checkpoint", max_new_tokens=MAX_NEW_TOKENS)
    assert checkpoint.describe()["decoding"] == shipped
    assert checkpoint.describe()["sampling"] == "checkpoint"
    same = tiny_backend(tiny_path, sampling="config", max_new_tokens=MAX_NEW_TOKENS,
                        temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.05)
    asked = _samples(requests[:2], 3)
    assert [r.output for r in checkpoint.generate(asked)] == [r.output for r in same.generate(asked)]


def test_checkpoint_mode_refuses_what_it_cannot_honour(tiny_path: Path, tmp_path: Path) -> None:
    folder = _with_generation_config(tiny_path, tmp_path / "ngram", do_sample=True,
                                     no_repeat_ngram_size=3)
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        tiny_backend(folder, sampling="checkpoint")


def test_a_deterministic_checkpoint_warns_that_samples_are_identical(tiny_path: Path, tmp_path: Path,
                                                                     requests, caplog) -> None:
    """Qwen2.5-VL ships top_k 1: sampling with it is greedy."""
    folder = _with_generation_config(tiny_path, tmp_path / "qwen25-like", do_sample=True, top_k=1,
                                     top_p=0.001, temperature=0.1, repetition_penalty=1.05)
    with caplog.at_level(logging.WARNING, logger="crossmath.models.sampling_modes"):
        backend = tiny_backend(folder, sampling="checkpoint", max_new_tokens=MAX_NEW_TOKENS)
    assert "identical" in caplog.text
    answers = backend.generate(_samples(requests[:1], 3))
    assert len({r.output for r in answers}) == 1


def test_an_unknown_sampling_mode_is_a_clear_error(tiny_path: Path) -> None:
    with pytest.raises(ValueError, match="sampling must be one of"):
        tiny_backend(tiny_path, sampling="beam")


# -- decoding options --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["greedy", "config"])
def test_static_cache_and_separate_prefill_answer_like_the_default(tiny_path: Path, requests,
                                                                   sampling: str) -> None:
    asked = _samples(requests[:5], 2)
    options = dict(sampling=sampling, max_new_tokens=MAX_NEW_TOKENS, batch_size=10)
    expected = _answers(tiny_backend(tiny_path, **options).generate(asked))
    static = tiny_backend(tiny_path, kv_cache="static", **options)
    assert static.describe()["kv_cache"] == "static"
    assert _answers(static.generate(asked)) == expected
    separate = tiny_backend(tiny_path, shared_prefill=False, **options)
    assert _answers(separate.generate(asked)) == expected
    assert separate.last_stats[0].prompts == (len(asked) if sampling == "config" else 5)


def test_compile_needs_the_static_cache(tiny_path: Path) -> None:
    with pytest.raises(ValueError, match="compile needs kv_cache: static"):
        tiny_backend(tiny_path, compile=True)


def test_shipped_hf_configs_name_real_options() -> None:
    """Every conf/model file for this backend uses only HFBackend's parameters (typos fail here)."""
    import inspect

    accepted = set(inspect.signature(HFBackend.__init__).parameters) - {"self"}
    shipped = {path.stem: OmegaConf.load(path) for path in (REPO / "conf" / "model").glob("*.yaml")}
    ours = {name: cfg for name, cfg in shipped.items() if cfg.get("_target_") == "crossmath.models.hf.HFBackend"}
    assert {"tiny-random", "qwen-vl", "qwen2.5-vl-3b", "qwen3-vl-8b", "qwen3.5-9b"} <= set(ours)
    for name, cfg in ours.items():
        options = set(backend_arguments(OmegaConf.to_container(cfg))) - {"_target_"}
        assert options <= accepted, f"{name}: unknown options {options - accepted}"
        assert cfg.name == name
        if cfg.min_pixels is not None:
            assert cfg.min_pixels <= cfg.max_pixels
    for name in ("qwen-vl", "qwen2.5-vl-3b", "qwen3-vl-8b", "qwen3.5-9b"):  # the release's protocol
        assert (ours[name].sampling, ours[name].max_new_tokens) == ("checkpoint", 16384), name
    assert ours["qwen3.5-9b"].enable_thinking is False
    assert ours["tiny-random"].sampling == "config" and ours["tiny-random"].temperature == 1.0


def test_thinking_switch_reaches_the_chat_template(greedy: HFBackend, requests) -> None:
    plain = greedy.generate(requests[:1])[0]
    greedy.enable_thinking = False
    no_think = greedy.generate(requests[:1])[0]
    assert no_think.n_prompt_tokens > plain.n_prompt_tokens


@pytest.mark.slow
def test_lora_adapter_is_loaded_and_merged(tiny_path: Path, tmp_path: Path, requests) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_path, dtype=torch.float32)
    base_q = base.model.language_model.layers[0].self_attn.q_proj.weight.detach().clone()
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    layer = lora.base_model.model.model.language_model.layers[0].self_attn.q_proj
    delta = (layer.lora_B["default"].weight @ layer.lora_A["default"].weight) * layer.scaling["default"]
    assert delta.abs().max() > 0
    lora.save_pretrained(tmp_path / "adapter")

    options = dict(max_new_tokens=MAX_NEW_TOKENS, min_pixels=3136, max_pixels=50176, batch_size=9)
    plain = HFBackend(tiny_path, **options)
    adapted = HFBackend(tiny_path, adapter=tmp_path / "adapter", **options)
    assert adapted.adapter == str(tmp_path / "adapter")
    assert not any("lora" in name for name, _ in adapted.model.named_parameters())  # merged
    merged_q = adapted.model.model.language_model.layers[0].self_attn.q_proj.weight
    torch.testing.assert_close(merged_q, base_q + delta.detach())
    assert [r.output for r in adapted.generate(requests)] != [r.output for r in plain.generate(requests)]


@pytest.mark.slow
def test_qwen3_vl_family_loads_image_only_and_decodes_alike(tiny_path: Path, tmp_path: Path,
                                                            requests) -> None:
    """The Qwen3-VL processor and model (as Qwen3.5 uses) through the same backend path."""
    folder = build_tiny_qwen3_vl(tiny_path, tmp_path / "qwen3-vl")
    reference = HFBackend(folder, attn_implementation="sdpa", max_new_tokens=MAX_NEW_TOKENS)
    alone = [reference.generate([request])[0] for request in requests]
    assert type(reference.processor).__name__ == "Qwen3VLProcessor"
    assert not hasattr(reference.processor, "video_processor")
    assert all(r.error is None and r.n_output_tokens > 0 for r in alone)
    batched = HFBackend(folder, attn_implementation="sdpa_gqa", max_new_tokens=MAX_NEW_TOKENS,
                        batch_size=9)
    assert _answers(batched.generate(requests)) == _answers(alone)


def test_missing_adapter_is_a_clear_error(tiny_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        HFBackend(tiny_path, adapter=tmp_path)
