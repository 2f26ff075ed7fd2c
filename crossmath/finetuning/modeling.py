"""The model to fine-tune: the evaluation's checkpoint, processor and prompt settings, plus LoRA.

Training reads the same ``conf/model/<name>.yaml`` as the evaluation (an ``HFBackend`` config),
so the checkpoint, prompt set, chat-template switches and image size bounds cannot differ
between the two. The model is loaded the way ``crossmath.models.hf`` loads it (same processor
loader, same attention registration); ``tests/test_train_collate.py`` pins that the prompt
tokens seen in training are exactly the ones the backend generates from.

LoRA goes on every linear projection of the language model's decoder layers (``lora_targets``:
``target_modules: auto`` reads them off the model, so a hybrid model's linear-attention layers
are covered as well as its attention and MLP). The module names of the vision tower overlap with
the language model's (both have ``gate_proj``, ``up_proj`` ...), so targets are a regular
expression anchored at the language model's module, not bare names.
The vision tower is frozen by default; ``vision_tower: lora`` adds adapters to its blocks and
``vision_tower: full`` trains all of its weights (saved with the adapter, as peft's
``modules_to_save``).

What the door reads is plain values, kept apart so that it loads no torch: the model's
``ModelSpec`` (``model_spec``) and the adapters' ``LoraSettings`` (``train_settings``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from crossmath.finetuning.lora_targets import AdapterCensus, resolve_target_modules
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.train_settings import LoraSettings

log = logging.getLogger(__name__)

TRAINED_ADAPTER = "default"  # peft's name for the adapter get_peft_model adds


def load_processor_for(spec: ModelSpec):
    from crossmath.models.processor import load_processor

    return load_processor(spec.path)


def load_base_model(spec: ModelSpec, dtype: torch.dtype) -> torch.nn.Module:
    """The checkpoint as ``HFBackend`` loads it (same attention implementation), in ``dtype``."""
    from crossmath.models.checkpoint_loading import load_pretrained_model

    return load_pretrained_model(spec.path, dtype, spec.attn_implementation)


def add_lora(model: torch.nn.Module, settings: LoraSettings, *,
             gradient_checkpointing: bool) -> torch.nn.Module:
    """``model`` wrapped by peft with the configured adapters; everything else frozen."""
    from peft import LoraConfig, get_peft_model

    if gradient_checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad, which a frozen
        # embedding never gives.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.disable_input_require_grads()  # see below
    model.config.use_cache = False
    names = resolve_target_modules(model, settings.language_model, settings.target_modules)
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_pattern(names),
        modules_to_save=[settings.vision_module] if settings.vision_tower == "full" else None,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    # transformers (enabling checkpointing) and peft (wrapping a checkpointed model) both hook
    # every input embedding to output a tensor that requires grad, for reentrant checkpointing.
    # On a VLM that includes the vision tower's patch embedding, so backward would run through
    # the whole frozen tower. Non-reentrant checkpointing needs none of it (the adapters build
    # the graph), so each set of hooks is removed right after it is added.
    peft_model.get_base_model().disable_input_require_grads()
    adapted = [name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")]
    if not any(f"{settings.language_model}." in name for name in adapted):
        raise ValueError(f"no module of the language model matched {config.target_modules!r}; "
                         f"check train.lora.language_model and train.lora.target_modules")
    return peft_model


def adapter_census(peft_model: torch.nn.Module, settings: LoraSettings) -> AdapterCensus:
    """Where the adapters of ``add_lora`` went, per decoder layer type."""
    return AdapterCensus.of(unwrap(peft_model), settings.language_model, settings.vision_tower)


def log_adapter_census(census: AdapterCensus) -> None:
    """The start line (adapters per layer type, trainable parameters) and its warnings."""
    log.info("%s", census.line())
    for warning in census.warnings():
        log.warning("%s", warning)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The peft model inside a DDP wrapper (or the model itself)."""
    return getattr(model, "module", model)


def save_adapter(model: torch.nn.Module, folder: Path) -> None:
    """The trained adapter's weights only: not a frozen reference adapter beside it, and an
    adapted output head does not drag the base head along."""
    unwrap(model).save_pretrained(str(folder), save_embedding_layers=False,
                                  selected_adapters=[TRAINED_ADAPTER])


def load_adapter_weights(model: torch.nn.Module, folder: Path) -> None:
    """Put saved adapter weights back into an identically configured peft model."""
    from peft import load_peft_weights, set_peft_model_state_dict

    result = set_peft_model_state_dict(unwrap(model), load_peft_weights(str(folder)))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"adapter in {folder} does not fit the model: unexpected {unexpected[:5]}")
    missing = [key for key in getattr(result, "missing_keys", []) if "lora_" in key]
    if missing:
        raise ValueError(f"adapter in {folder} does not fit the model: it lacks {missing[:5]}")


def load_initial_adapter(model: torch.nn.Module, folder: Path, settings: LoraSettings) -> None:
    """Start from a saved adapter (e.g. the SFT stage's) instead of fresh adapter weights.

    The adapter must have the shape ``settings`` gives the model (rank, alpha, adapted modules):
    a mismatch is an error naming the file and the field, never a silent partial load.
    """
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"init_adapter {folder}: no adapter_config.json there")
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    for key, wanted in (("r", settings.rank), ("lora_alpha", settings.alpha)):
        if saved.get(key) != wanted:
            raise ValueError(f"{config_path}: field {key!r} is {saved.get(key)!r}, but train.lora "
                             f"gives {wanted!r}; set train.lora to the adapter's shape")
    load_adapter_weights(model, folder)


@dataclass(frozen=True)
class Precision:
    """Weights' dtype and the autocast dtype: bf16 weights and autocast on CUDA, fp32 on CPU."""

    weights: torch.dtype
    autocast: torch.dtype | None = None

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> "Precision":
        if name == "auto":
            name = "bf16" if device.type == "cuda" else "fp32"
        if name == "bf16":
            return cls(torch.bfloat16, torch.bfloat16)
        if name == "fp32":
            return cls(torch.float32, None)
        raise ValueError(f"train.precision must be auto, bf16 or fp32, got {name!r}")
