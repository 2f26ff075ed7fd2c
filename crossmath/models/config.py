"""A model config (``conf/model/*.yaml``) holds two kinds of keys: the backend's constructor
arguments, which ``hydra.utils.instantiate`` passes on, and ``prompt``, the prompt set the
pipeline builds the model's prompts from. The backend never sees the prompt set: requests
arrive with their prompts finished.

Two questions the pipeline asks of a model config before any model loads are answered here,
from the config alone, for the backends whose contract points here
(``crossmath.models.contract``): do its ``sampling`` modes decode greedily, and what dtype
will "auto" become."""

from __future__ import annotations

from typing import Any, Mapping

PROMPT_KEY = "prompt"
ADAPTER_KEY = "adapter"  # a LoRA adapter folder the backend loads (hf: merged; vLLM: served)

# What the HF backend's ``dtype: auto`` becomes on each kind of device.
AUTO_DTYPES = {"cuda": "bfloat16", "cpu": "float32"}
# The attention implementation our HF configs name (registered by ``attention``).
SDPA_GQA = "sdpa_gqa"


def backend_arguments(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without the keys that are not the backend's (what ``instantiate`` gets)."""
    return {key: value for key, value in model_config.items() if key != PROMPT_KEY}


def prompt_set_name(model_config: Mapping[str, Any]) -> str | None:
    """The prompt set the model's prompts are built from; None for rule-based baselines."""
    return model_config.get(PROMPT_KEY)


def sampling_mode_is_greedy(arguments: Mapping[str, Any],
                            checkpoint_generation: Mapping[str, Any] | None = None) -> bool:
    """Whether a backend with ``sampling`` modes (hf, vLLM: ``sampling_modes``) decodes every
    sample of a request to the same text: mode ``greedy``; in ``checkpoint`` mode, a checkpoint
    whose generation config (``checkpoint_generation``, when known) does not sample or keeps
    only the top token (Qwen2.5-VL ships ``top_k: 1``)."""
    mode = arguments.get("sampling")
    if mode == "checkpoint" and checkpoint_generation is not None:
        return (not checkpoint_generation.get("do_sample", False)
                or checkpoint_generation.get("top_k") == 1)
    return mode == "greedy"


def resolved_dtype(model_config: Mapping[str, Any], gpus: float) -> str | None:
    """The dtype the backend will load with, ``auto`` resolved for where it runs: on a GPU
    when its actor gets ``gpus`` > 0 (or ``device`` names CUDA), else on the CPU."""
    dtype = model_config.get("dtype")
    if dtype != "auto":
        return dtype
    device = str(model_config.get("device", "auto"))
    on_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
    return AUTO_DTYPES["cuda" if on_gpu else "cpu"]
