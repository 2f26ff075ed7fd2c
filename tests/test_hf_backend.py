"""The hf backend on the tiny random Qwen2.5-VL: batching, sampling, OOM recovery, adapters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from crossmath.models.attention import sdpa_gqa_attention_forward
from crossmath.models.base import ModelRequest
from crossmath.models.config import backend_arguments
from crossmath.models.hf import HFBackend
from crossmath.models.prompts import puzzle_request
from crossmath.models.tiny import build_tiny_random
from crossmath.puzzle.records import read_official_jsonl

REPO = Path(__file__).resolve().parents[1]
MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_random(tmp_path_factory.getbasetemp() / "models")


@pytest.fixture(scope="module")
def module_backend(tiny_path: Path) -> HFBackend:
    config = OmegaConf.load(REPO / "conf" / "model" / "tiny-random.yaml")
    config.model.cache_dir = str(tiny_path.parent)
    config.max_new_tokens = MAX_NEW_TOKENS
    return hydra.utils.instantiate(backend_arguments(OmegaConf.to_container(config)))


@pytest.fixture
def backend(module_backend: HFBackend) -> HFBackend:
    """The shared backend, with the settings a test may change put back afterwards."""
    saved = dict(vars(module_backend))
    yield module_backend
    vars(module_backend).update(saved)


@pytest.fixture(scope="module")
def requests(official_jsonl: Path) -> list[ModelRequest]:
    """Nine real puzzles of the official sample, every modality, images of different sizes."""
    made = []
    for i, record in enumerate(read_official_jsonl(official_jsonl)[:9]):
        modality = ("text", "image", "hybrid")[i % 3]
        made.append(puzzle_request(
            f"{record.name}-{i}", modality, record.fields["markdown_table"],
            image=None if modality == "text" else record.image_blank_path.read_bytes(),
        ))
    return made


def _answers(responses) -> list[tuple[str, str, int, int]]:
    return [(r.request_id, r.output, r.n_prompt_tokens, r.n_output_tokens) for r in responses]


def test_config_builds_the_backend_on_the_tiny_folder(backend: HFBackend, tiny_path: Path) -> None:
    assert isinstance(backend, HFBackend)
    assert backend.name == "tiny-random"
    assert backend.model_path == str(tiny_path)
    assert backend.describe()["attn_implementation"] == "sdpa_gqa"
    assert backend.model.config._attn_implementation == "sdpa_gqa"


def test_greedy_answers_do_not_depend_on_batch_size(backend: HFBackend, requests) -> None:
    """Each request alone against mixed batches of 4 and 9 (left padding, varied image sizes)."""
    backend.batch_size = 1
    alone = [backend.generate([request])[0] for request in requests]
    assert len({r.n_prompt_tokens for r in alone}) >= 6  # the lengths really differ
    assert len({r.output for r in alone}) >= 3  # the model does not say the same thing always
    assert all(r.error is None and r.n_output_tokens > 0 for r in alone)
    for batch_size in (4, 9):
        backend.batch_size = batch_size
        assert _answers(backend.generate(requests)) == _answers(alone), f"batch size {batch_size}"


def test_sdpa_gqa_decodes_like_sdpa(tiny_path: Path, requests) -> None:
    reference = HFBackend(tiny_path, attn_implementation="sdpa", max_new_tokens=MAX_NEW_TOKENS,
                          min_pixels=3136, max_pixels=50176, batch_size=9)
    grouped = HFBackend(tiny_path, attn_implementation="sdpa_gqa", max_new_tokens=MAX_NEW_TOKENS,
                        min_pixels=3136, max_pixels=50176, batch_size=9)
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


def test_greedy_samples_share_one_sequence(backend: HFBackend, requests, monkeypatch) -> None:
    calls = _count_generate_rows(backend, monkeypatch)
    backend.batch_size = 16
    asked = [replace(r, request_id=f"{r.request_id}/s{s}", sample=s)
             for r in requests[:2] for s in range(3)]
    responses = backend.generate(asked)
    assert [r.request_id for r in responses] == [r.request_id for r in asked]
    assert calls == [(2, 1)]  # two prompts, one sequence each
    assert responses[0].output == responses[1].output == responses[2].output
    assert responses[3].output == responses[4].output == responses[5].output


def test_sampled_answers_decode_samples_together(backend: HFBackend, requests, monkeypatch) -> None:
    calls = _count_generate_rows(backend, monkeypatch)
    backend.do_sample, backend.temperature, backend.batch_size = True, 5.0, 16
    asked = [replace(r, request_id=f"{r.request_id}/s{s}", sample=s)
             for r in requests[:3] for s in range(4)]
    first = backend.generate(asked)
    assert calls == [(3, 4)]  # three prompts, four samples each, one generate call
    assert [r.request_id for r in first] == [r.request_id for r in asked]
    assert len({r.output for r in first[:4]}) > 1  # the samples of a puzzle differ
    assert _answers(backend.generate(asked)) == _answers(first)  # the seed makes it repeatable


def test_out_of_memory_halves_the_batch_and_loses_nothing(backend: HFBackend, requests, monkeypatch) -> None:
    backend.batch_size = 9
    expected = _answers(backend.generate(requests))
    calls = _count_generate_rows(backend, monkeypatch, fail_above=2)
    backend.batch_size = 9
    got = backend.generate(requests)
    assert [r.error for r in got] == [None] * len(requests)
    assert _answers(got) == expected
    assert backend.batch_size == 2
    assert calls[0] == (9, 1) and calls[1] == (4, 1)  # failed at 9, failed at 4, then pairs
    assert all(rows <= 2 for rows, _ in calls[2:])


def test_out_of_memory_of_a_single_prompt_is_that_request_error(backend: HFBackend, requests,
                                                                  monkeypatch) -> None:
    _count_generate_rows(backend, monkeypatch, fail_above=0)
    backend.batch_size = 1
    got = backend.generate(requests[:2])
    assert all(r.error and "out of memory" in r.error and r.output == "" for r in got)


def test_a_failing_prompt_is_isolated_and_the_rest_answers(backend: HFBackend, requests,
                                                             monkeypatch) -> None:
    backend.batch_size = 1
    alone = backend.generate(requests[:4])
    bad = alone[1].n_prompt_tokens
    assert [r.n_prompt_tokens for r in alone].count(bad) == 1
    real = backend.model.generate

    def generate(**kwargs):
        if (kwargs["attention_mask"].sum(dim=1) == bad).any():
            raise RuntimeError("device-side assert (injected)")
        return real(**kwargs)

    monkeypatch.setattr(backend.model, "generate", generate)
    backend.batch_size = 4
    got = backend.generate(requests[:4])
    assert got[1].error == "RuntimeError: device-side assert (injected)" and got[1].output == ""
    assert _answers(got[:1] + got[2:]) == _answers(alone[:1] + alone[2:])


def test_bad_requests_get_errors_and_the_rest_answers(backend: HFBackend, requests) -> None:
    broken_png = replace(requests[1], request_id="broken",
                         prompt=replace(requests[1].prompt, images=(b"not a png",)))
    good = requests[0]
    got = backend.generate([broken_png, good])
    assert [r.request_id for r in got] == ["broken", good.request_id]
    assert got[0].error and "UnidentifiedImageError" in got[0].error
    assert got[1].error is None and got[1].n_output_tokens > 0


def test_no_requests_no_answers(backend: HFBackend) -> None:
    assert backend.generate([]) == []


def test_checkpoint_generation_defaults_do_not_leak(backend: HFBackend, requests, monkeypatch) -> None:
    """Only the run's config shapes answers, not what a checkpoint's generation_config carries."""
    before = _answers(backend.generate(requests[:3]))
    monkeypatch.setattr(backend.model.generation_config, "repetition_penalty", 50.0, raising=False)
    assert _answers(backend.generate(requests[:3])) == before
    backend.generation_kwargs = {**backend.generation_kwargs, "repetition_penalty": 50.0}
    assert _answers(backend.generate(requests[:3])) != before  # the option itself does matter


def test_static_cache_option_answers_like_the_dynamic_cache(backend: HFBackend, requests) -> None:
    backend.batch_size = 9
    dynamic = _answers(backend.generate(requests))
    backend.generation_kwargs = {**backend.generation_kwargs, "cache_implementation": "static"}
    assert _answers(backend.generate(requests)) == dynamic


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


def test_thinking_switch_reaches_the_chat_template(backend: HFBackend, requests) -> None:
    plain = backend.generate(requests[:1])[0]
    backend.enable_thinking = False
    no_think = backend.generate(requests[:1])[0]
    assert no_think.n_prompt_tokens > plain.n_prompt_tokens


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


def test_qwen3_vl_family_loads_image_only_and_decodes_alike(tiny_path: Path, tmp_path: Path,
                                                            requests) -> None:
    """The Qwen3-VL processor and model (as Qwen3.5 uses) through the same backend path."""
    folder = _tiny_qwen3_vl(tiny_path, tmp_path / "qwen3-vl")
    reference = HFBackend(folder, attn_implementation="sdpa", max_new_tokens=MAX_NEW_TOKENS)
    alone = [reference.generate([request])[0] for request in requests]
    assert type(reference.processor).__name__ == "Qwen3VLProcessor"
    assert not hasattr(reference.processor, "video_processor")
    assert all(r.error is None and r.n_output_tokens > 0 for r in alone)
    batched = HFBackend(folder, attn_implementation="sdpa_gqa", max_new_tokens=MAX_NEW_TOKENS,
                        batch_size=9)
    assert _answers(batched.generate(requests)) == _answers(alone)


def _tiny_qwen3_vl(tiny_path: Path, folder: Path) -> Path:
    from transformers import AutoTokenizer, Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen3_vl import Qwen3VLProcessor

    from crossmath.models.processor import image_only
    from crossmath.models.tiny import CHAT_TEMPLATE

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    ids = tokenizer.convert_tokens_to_ids
    image_processor = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, min_pixels=4 * 32 * 32,
                                               max_pixels=64 * 32 * 32)
    config = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [4, 2, 2], "mrope_interleaved": True},
                         eos_token_id=ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=16, deepstack_visual_indexes=[0], num_position_embeddings=64),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    image_only(Qwen3VLProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                 chat_template=CHAT_TEMPLATE).save_pretrained(folder)
    return folder


def test_missing_adapter_is_a_clear_error(tiny_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        HFBackend(tiny_path, adapter=tmp_path)


def _count_generate_rows(backend: HFBackend, monkeypatch, fail_above: int | None = None):
    """Record (prompt rows, num_return_sequences) of each generate call; OOM above a row count."""
    calls: list[tuple[int, int]] = []
    real = backend.model.generate

    def generate(**kwargs):
        rows = kwargs["input_ids"].shape[0]
        calls.append((rows, kwargs.get("num_return_sequences", 1)))
        if fail_above is not None and rows > fail_above:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(**kwargs)

    monkeypatch.setattr(backend.model, "generate", generate)
    return calls
