"""The tiny random Qwen2.5-VL: built offline, deterministic, loadable like a real checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crossmath.models import tiny
from crossmath.models.processor import load_processor
from crossmath.models.tiny import SPECIAL_TOKENS, build_tiny_random


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared with the backend tests: a second build_tiny_random call finds the folder complete.
    return build_tiny_random(tmp_path_factory.getbasetemp() / "models")


def test_build_writes_a_complete_checkpoint(tiny_path: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
                 "chat_template.jinja", "generation_config.json"):
        assert (tiny_path / name).is_file(), name
    config = json.loads((tiny_path / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
    assert vision["out_hidden_size"] == text["hidden_size"]
    assert text["num_key_value_heads"] < text["num_attention_heads"]  # exercises grouped attention


def test_second_build_reuses_the_folder(tiny_path: Path) -> None:
    weights = tiny_path / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_tiny_random(tiny_path.parent) == tiny_path
    assert weights.stat().st_mtime_ns == before


def test_weights_are_the_same_on_every_build(tiny_path: Path, tmp_path: Path) -> None:
    again = build_tiny_random(tmp_path)
    assert again != tiny_path
    assert (again / "model.safetensors").read_bytes() == (tiny_path / "model.safetensors").read_bytes()
    assert (again / "tokenizer.json").read_bytes() == (tiny_path / "tokenizer.json").read_bytes()


def test_interrupted_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny, "_write_checkpoint", fail)
    with pytest.raises(KeyboardInterrupt):
        build_tiny_random(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_processor_loads_image_only_with_the_family_tokens(tiny_path: Path) -> None:
    processor = load_processor(tiny_path)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert not hasattr(processor, "video_processor")
    tokenizer = processor.tokenizer
    for token in SPECIAL_TOKENS:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    text = "| 28 |   | ? | ÷ | 3 | = | 31 |\n<answer>93 6 45 8</answer>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode()) // 2  # the BPE learned merges, not just bytes


def test_chat_template_expands_the_image_and_switches_thinking(tiny_path: Path) -> None:
    from PIL import Image

    processor = load_processor(tiny_path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "solve"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>solve<|im_end|>\n"
                    "<|im_start|>assistant\n")
    no_think = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                             enable_thinking=False)
    assert no_think == text + "<think>\n\n</think>\n\n"
    inputs = processor(text=[text], images=[Image.new("RGB", (330, 220))], return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == processor.image_token_id).sum())
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert n_image_tokens == t * h * w // 4 > 1


def test_model_generates_on_cpu(tiny_path: Path) -> None:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_path, dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 1_000_000
    processor = load_processor(tiny_path)
    inputs = processor(text=["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"],
                       return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4
