"""A model config (``conf/model/*.yaml``) holds two kinds of keys: the backend's constructor
arguments, which ``hydra.utils.instantiate`` passes on, and ``prompt``, the prompt set the
pipeline builds the model's prompts from. The backend never sees the prompt set: requests
arrive with their prompts finished."""

from __future__ import annotations

from typing import Any, Mapping

PROMPT_KEY = "prompt"


def backend_arguments(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without the keys that are not the backend's (what ``instantiate`` gets)."""
    return {key: value for key, value in model_config.items() if key != PROMPT_KEY}


def prompt_set_name(model_config: Mapping[str, Any]) -> str | None:
    """The prompt set the model's prompts are built from; None for rule-based baselines."""
    return model_config.get(PROMPT_KEY)
