"""Tiny random Qwen3-VL and Qwen3.5 models, built in memory from configs: the shapes of the
families we ship configs for (``conf/model/qwen3-vl-8b.yaml``, ``conf/model/qwen3.5-9b.yaml``)
at a size a CPU handles in milliseconds.

Pure builders: a config with the family's structure (Qwen3-VL's deepstack vision tower; Qwen3.5's
hybrid decoder, three linear-attention layers to one full-attention layer), random weights from
a fixed seed, nothing downloaded and nothing written. Their special token ids are the Qwen ones
of the tiny Qwen2.5-VL's tokenizer (``crossmath.models.tiny``), and their vision towers take the
same 14 px patches in 2x2 merges, so the tiny model's processor output feeds them too (plus the
``mm_token_type_ids`` both families need: ``mm_token_type_ids``).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

FAMILIES = ("qwen3_vl", "qwen3_5")
VOCAB_SIZE = 1024  # the tiny tokenizer's
# Token ids of the tiny tokenizer's Qwen special tokens (crossmath.models.tiny.SPECIAL_TOKENS order).
TOKEN_IDS = {"pad": 0, "eos": 2, "vision_start": 9, "vision_end": 10, "image": 12, "video": 13}
_TEXT = dict(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
             pad_token_id=TOKEN_IDS["pad"], eos_token_id=TOKEN_IDS["eos"],
             bos_token_id=TOKEN_IDS["pad"])
_VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
               patch_size=14, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64)
_SPECIAL = dict(image_token_id=TOKEN_IDS["image"], video_token_id=TOKEN_IDS["video"],
                vision_start_token_id=TOKEN_IDS["vision_start"],
                vision_end_token_id=TOKEN_IDS["vision_end"], tie_word_embeddings=False)


def tiny_config(family: str) -> Any:
    """The tiny config of ``family`` (``qwen3_vl`` or ``qwen3_5``)."""
    from transformers import Qwen3_5Config, Qwen3VLConfig

    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
            "mrope_interleaved": True}  # sums to head_dim / 2
    if family == "qwen3_vl":
        return Qwen3VLConfig(text_config={**_TEXT, "num_hidden_layers": 2, "rope_parameters": rope},
                             vision_config={**_VISION, "deepstack_visual_indexes": [0]}, **_SPECIAL)
    if family == "qwen3_5":
        layer_types = ["linear_attention"] * 3 + ["full_attention"]  # the real model's 3:1 pattern
        text = {**_TEXT, "num_hidden_layers": 4, "layer_types": layer_types,
                "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 8,
                "linear_value_head_dim": 8, "linear_conv_kernel_dim": 4,
                "rope_parameters": {**rope, "partial_rotary_factor": 0.5}}
        return Qwen3_5Config(text_config=text, vision_config=_VISION, **_SPECIAL)
    raise ValueError(f"unknown tiny family {family!r}; choose one of {FAMILIES}")


def build_tiny_family(family: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random ``family`` model (``...ForConditionalGeneration``), in eval mode, fp32."""
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    return AutoModelForImageTextToText.from_config(tiny_config(family)).eval()


def mm_token_type_ids(input_ids: torch.Tensor, config: Any) -> torch.Tensor:
    """1 at image placeholder tokens, 0 elsewhere: what the Qwen3-VL and Qwen3.5 processors
    return beside ``input_ids`` (their multimodal rope reads it)."""
    return (input_ids == config.image_token_id).long()


def with_mm_token_types(inputs: Mapping[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """Processor output of the tiny Qwen2.5-VL, completed for a Qwen3-VL or Qwen3.5 model."""
    return {**inputs, "mm_token_type_ids": mm_token_type_ids(inputs["input_ids"], config)}
