"""LoRA targets by architecture: every linear projection of every decoder layer of each family we
ship configs for (tiny random Qwen2.5-VL, Qwen3-VL and Qwen3.5 built locally), the vision tower
frozen, one start line per run, and a warning when a decoder layer's attention gets no adapter."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from crossmath.finetuning.lora_targets import AdapterCensus
from crossmath.finetuning.modeling import (
    adapter_census,
    add_lora,
    load_base_model,
    log_adapter_census,
)
from crossmath.finetuning.train_settings import LoraSettings
from crossmath.models.tiny_families import build_tiny_family, with_mm_token_types

ATTENTION = ("k_proj", "o_proj", "q_proj", "v_proj")
LINEAR_ATTENTION = ("in_proj_a", "in_proj_b", "in_proj_qkv", "in_proj_z", "out_proj")
MLP = ("down_proj", "gate_proj", "up_proj")


@pytest.fixture(scope="module")
def tiny_models(tiny_spec):
    return {"qwen2_5_vl": load_base_model(tiny_spec, torch.float32),
            "qwen3_vl": build_tiny_family("qwen3_vl"), "qwen3_5": build_tiny_family("qwen3_5")}


EXPECTED = {  # layer type -> adapted module names of each such layer, and how many such layers
    "qwen2_5_vl": {"full_attention": (sorted(ATTENTION + MLP), 2)},
    "qwen3_vl": {"full_attention": (sorted(ATTENTION + MLP), 2)},
    "qwen3_5": {"linear_attention": (sorted(LINEAR_ATTENTION + MLP), 3),
                "full_attention": (sorted(ATTENTION + MLP), 1)},
}


@pytest.mark.parametrize("family", list(EXPECTED))
def test_every_linear_projection_of_every_decoder_layer_gets_an_adapter(tiny_models, family, caplog):
    model = add_lora(tiny_models[family], LoraSettings(rank=2), gradient_checkpointing=False)
    census = adapter_census(model, LoraSettings(rank=2))
    by_type = {}
    for layer in census.layers:
        by_type.setdefault(layer.kind, []).append(list(layer.adapted))
    assert {kind: (layers[0], len(layers)) for kind, layers in by_type.items()} == EXPECTED[family]
    assert all(layers.count(layers[0]) == len(layers) for layers in by_type.values())
    linear = [m for n, m in model.named_modules() if ".layers." in n and ".visual." not in n
              and isinstance(m, torch.nn.Linear) and "lora_" not in n and "base_layer" not in n]
    assert linear == []  # no bare nn.Linear left in a decoder layer: all are peft-wrapped
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".visual." not in n for n in trainable)  # tower frozen
    assert census.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert not census.warnings()
    with caplog.at_level(logging.INFO):
        log_adapter_census(census)
    (line,) = [r.getMessage() for r in caplog.records]
    for kind, (names, count) in EXPECTED[family].items():
        assert f"{count} {kind} layers x {len(names)} ({' '.join(names)})" in line, line
    assert "vision tower frozen" in line and f"trainable parameters {census.trainable:,}" in line
    tiny_models[family] = model.unload()  # the next test gets the bare model back


def test_the_qwen3_5_start_line_names_each_linear_attention_projection(tiny_models) -> None:
    model = add_lora(tiny_models["qwen3_5"], LoraSettings(rank=2), gradient_checkpointing=False)
    line = adapter_census(model, LoraSettings(rank=2)).line()
    assert line.startswith("LoRA adapters: 3 linear_attention layers x 8 (down_proj gate_proj in_proj_a "
                           "in_proj_b in_proj_qkv in_proj_z out_proj up_proj), 1 full_attention layers x 7 "
                           "(down_proj gate_proj k_proj o_proj q_proj up_proj v_proj); vision tower frozen"), line
    tiny_models["qwen3_5"] = model.unload()


def test_a_layer_without_attention_adapters_is_a_warning(tiny_models, caplog) -> None:
    """The old fixed list (attention and MLP names) on Qwen3.5: its linear-attention layers get
    only their MLP adapters, and the start says so."""
    old = LoraSettings(rank=2, target_modules=ATTENTION + MLP)
    model = add_lora(tiny_models["qwen3_5"], old, gradient_checkpointing=False)
    census = adapter_census(model, old)
    assert [layer.index for layer in census.without_attention_adapters()] == [0, 1, 2]
    with caplog.at_level(logging.INFO):
        log_adapter_census(census)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["3 of 4 decoder layers (linear_attention; layers 0,1,2) get no adapter on their "
                        "attention; set train.lora.target_modules to auto or add their projections"]
    tiny_models["qwen3_5"] = model.unload()


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_5"])
def test_gradients_reach_every_adapter_through_an_image_prompt(tiny_models, tiny_encoder, family) -> None:
    """The adapters act in the forward pass of each family (an image prompt, the tiny processor's
    output plus the mm_token_type_ids these families read), and every lora_B gets a gradient."""
    model = add_lora(tiny_models[family], LoraSettings(rank=2), gradient_checkpointing=True)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "3 + ? = 7"}]}]
    processor = tiny_encoder.processor
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = dict(processor(text=[text], images=[Image.new("RGB", (112, 84), "white")], return_tensors="pt"))
    model.train()
    model(**with_mm_token_types(inputs, model.config), use_cache=False).logits.pow(2).mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if "lora_B" in n}
    assert len(grads) == sum(len(names) * count for names, count in EXPECTED[family].values())
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    tiny_models[family] = model.unload()


def test_census_counts_adapters_outside_the_decoder_layers(tiny_models) -> None:
    settings = LoraSettings(rank=2, extra_target_modules=("lm_head",))
    model = add_lora(tiny_models["qwen3_vl"], settings, gradient_checkpointing=False)
    census = AdapterCensus.of(model, "language_model", "frozen")
    assert census.outside == ("lm_head",) and "; also lm_head;" in census.line()
    tiny_models["qwen3_vl"] = model.unload()
