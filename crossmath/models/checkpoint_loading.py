"""Loading a checkpoint for inference: weights, dtype, device, a merged LoRA adapter, stop ids.

Shared by the hf backend and fine-tuning (which loads the same checkpoint the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText

from crossmath.models.attention import SDPA_GQA, register_sdpa_gqa
from crossmath.models.config import AUTO_DTYPES


def load_pretrained_model(path: str | Path, dtype: torch.dtype,
                          attn_implementation: str | None) -> torch.nn.Module:
    """A checkpoint as the backend loads it; crossmath's ``sdpa_gqa`` is registered first."""
    _register(attn_implementation)
    return AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype, attn_implementation=attn_implementation
    )


def set_attention(model: torch.nn.Module, attn_implementation: str | None) -> torch.nn.Module:
    """A model built elsewhere switched to ``attn_implementation`` (None: left as it is)."""
    if attn_implementation is not None:
        _register(attn_implementation)
        model.set_attn_implementation(attn_implementation)
    return model


def _register(attn_implementation: str | None) -> None:
    """Make crossmath's own attention loadable when it is the one asked for."""
    if attn_implementation == SDPA_GQA:
        register_sdpa_gqa()


def resolve_device(device: str) -> str:
    """``"auto"``: CUDA if available, else CPU; any other name as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"``: bfloat16 on CUDA, float32 elsewhere (``AUTO_DTYPES``); else a torch dtype
    by name."""
    if dtype == "auto":
        dtype = AUTO_DTYPES["cuda" if device.type == "cuda" else "cpu"]
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use 'auto' or a torch dtype name (bfloat16)")
    return resolved


def merge_adapter(model: torch.nn.Module, adapter: str) -> torch.nn.Module:
    """Load a PEFT adapter onto ``model`` and fold it into the weights (plain model back)."""
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"adapter {adapter!r}: no adapter_config.json there")
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def stop_token_ids(model: torch.nn.Module, tokenizer: Any) -> list[int]:
    """The tokens that end an answer: the generation config's EOS ids and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    ids = [i for i in ids if i is not None]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model has no end-of-sequence token configured")
    return ids
