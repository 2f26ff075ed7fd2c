"""A model config (``conf/model/*.yaml``) holds two kinds of keys: the backend's constructor
arguments, which ``hydra.utils.instantiate`` passes on, and ``prompt``, the prompt set the
pipeline builds the model's prompts from. The backend never sees the prompt set: requests
arrive with their prompts finished.

The questions the pipeline asks of a model config before any model loads (is it greedy? what
dtype will "auto" become?) are answered here, from the config alone."""

from __future__ import annotations

from typing import Any, Mapping

PROMPT_KEY = "prompt"

# What the HF backend's ``dtype: auto`` becomes on each kind of device.
AUTO_DTYPES = {"cuda": "bfloat16", "cpu": "float32"}


def backend_arguments(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without the keys that are not the backend's (what ``instantiate`` gets)."""
    return {key: value for key, value in model_config.items() if key != PROMPT_KEY}


def prompt_set_name(model_config: Mapping[str, Any]) -> str | None:
    """The prompt set the model's prompts are built from; None for rule-based baselines."""
    return model_config.get(PROMPT_KEY)


def decodes_greedily(model_config: Mapping[str, Any],
                     checkpoint_generation: Mapping[str, Any] | None = None) -> bool:
    """Whether every sample of a request would get the same text, so that more than one
    sample would only repeat the first.

    - HF backend (``sampling``): ``greedy``; in ``checkpoint`` mode, a checkpoint whose
      generation config (``checkpoint_generation``, when known) does not sample or keeps only
      the top token (Qwen2.5-VL ships ``top_k: 1``).
    - OpenAI-compatible servers (``temperature``): temperature 0.
    - Rule-based backends: their class's ``deterministic`` attribute (the oracle is; chance
      is not).
    """
    if "sampling" in model_config:
        mode = model_config["sampling"]
        if mode == "checkpoint" and checkpoint_generation is not None:
            return (not checkpoint_generation.get("do_sample", False)
                    or checkpoint_generation.get("top_k") == 1)
        return mode == "greedy"
    if "temperature" in model_config:
        return float(model_config["temperature"]) == 0.0
    import hydra.utils

    return bool(getattr(hydra.utils.get_class(model_config["_target_"]), "deterministic", False))


def resolved_dtype(model_config: Mapping[str, Any], gpus: float) -> str | None:
    """The dtype the backend will load with, ``auto`` resolved for where it runs: on a GPU
    when its actor gets ``gpus`` > 0 (or ``device`` names CUDA), else on the CPU."""
    dtype = model_config.get("dtype")
    if dtype != "auto":
        return dtype
    device = str(model_config.get("device", "auto"))
    on_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
    return AUTO_DTYPES["cuda" if on_gpu else "cpu"]
