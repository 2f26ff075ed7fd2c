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
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from crossmath.finetuning.lora_targets import (
    AUTO,
    AdapterCensus,
    resolve_target_modules,
    target_regex,
)
from crossmath.models.prompts import PromptSet

log = logging.getLogger(__name__)

HF_BACKEND_TARGET = "crossmath.models.hf.HFBackend"
TRAINED_ADAPTER = "default"  # peft's name for the adapter get_peft_model adds
VISION_MODES = ("frozen", "lora", "full")


def check_trainable(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``config`` (a ``conf/model`` entry) is a model training can
    start from: a local transformers model (``HFBackend``), without an adapter."""
    target = config.get("_target_")
    if target != HF_BACKEND_TARGET:
        raise ValueError(
            f"model {config.get('name')!r} uses {target!r}; fine-tuning needs a local "
            f"transformers model ({HF_BACKEND_TARGET}), e.g. model=tiny-random"
        )
    if config.get("adapter"):
        raise ValueError(
            "model.adapter is set: fine-tuning starts from the base weights (the adapter "
            "option is for evaluating a tuned model); set model.adapter=null"
        )


def weights_on_this_node(source: str | Mapping[str, Any]) -> str:
    """Where the weights ``source`` names lie on the node calling this: a path or Hub id as
    given, or the folder a ``_target_`` builder (``model=tiny-random``) returns, built here on
    first use (the builder is idempotent: it reuses a complete folder in its cache)."""
    if isinstance(source, Mapping):
        import hydra.utils

        return str(hydra.utils.instantiate(dict(source)))
    return str(source)


@dataclass(frozen=True)
class ModelSpec:
    """What training takes from a backend config, resolved once where the config is read (the
    door, on the driver), and sent whole to every worker: where the weights are, the prompt set
    (read: ``prompt_set`` is the set itself, never its name, so no worker reads it again) and
    the processor and chat-template options.

    ``weights`` is the config's ``model`` as given (a path or Hub id, or the ``_target_`` mapping
    of a builder such as ``crossmath.models.tiny.build_tiny_random``), and ``path`` the folder it
    gave on the node that built the spec. The location of the weights is the one thing a worker
    derives again (``on_this_node``): a builder writes its folder into a cache on the node it
    runs on, which on a multi-node cluster need not exist on a worker's node. Everything else is
    the driver's, read once.
    """

    path: str
    name: str
    prompt_set: PromptSet
    weights: str | Mapping[str, Any] | None = None  # None: ``path`` itself, the same on every node
    attn_implementation: str | None = None
    enable_thinking: bool | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None

    @classmethod
    def from_backend_config(cls, config: Mapping[str, Any], prompt_set: PromptSet) -> "ModelSpec":
        """Read a ``conf/model`` entry whose prompt set (``config["prompt"]``, or the default)
        the caller has resolved into ``prompt_set``; ``model`` may itself be a ``_target_`` that
        builds the folder, built here."""
        check_trainable(config)
        source = config["model"]
        if isinstance(source, Mapping):
            source = dict(source)
        path = weights_on_this_node(source)
        return cls(
            path=path,
            name=str(config.get("name") or Path(path).name),
            prompt_set=prompt_set,
            weights=source,
            attn_implementation=config.get("attn_implementation"),
            enable_thinking=config.get("enable_thinking"),
            min_pixels=config.get("min_pixels"),
            max_pixels=config.get("max_pixels"),
        )

    def on_this_node(self) -> "ModelSpec":
        """This spec with ``path`` where the weights lie on the node calling it (a worker's):
        a builder's folder is built there if missing; a path or Hub id is kept as it is."""
        if not isinstance(self.weights, Mapping):
            return self
        return dataclasses.replace(self, path=weights_on_this_node(self.weights))


@dataclass(frozen=True)
class LoraSettings:
    """Where adapters go and how big they are (``train.lora`` in ``conf/train/lora.yaml``)."""

    rank: int = 16
    alpha: float = 32
    dropout: float = 0.05
    language_model: str = "language_model"
    target_modules: Sequence[str] | str = AUTO  # auto: every linear projection of the decoder layers
    extra_target_modules: Sequence[str] = ()
    vision_tower: str = "frozen"
    vision_module: str = "visual"
    vision_target_modules: Sequence[str] = ("qkv", "proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self) -> None:
        if self.vision_tower not in VISION_MODES:
            raise ValueError(f"train.lora.vision_tower must be one of {VISION_MODES}, "
                             f"got {self.vision_tower!r}")
        if self.rank < 1:
            raise ValueError(f"train.lora.rank must be at least 1, got {self.rank}")
        if not self.target_modules:
            raise ValueError("train.lora.target_modules is empty")

    def target_pattern(self, names: Sequence[str]) -> str:
        """The regular expression (peft full-matches it) naming every adapted module, with
        ``names`` the language model's targets (``target_modules`` resolved for the model)."""
        parts = [target_regex(self.language_model, names)]
        if self.vision_tower == "lora":
            parts.append(target_regex(self.vision_module, self.vision_target_modules, r"blocks\.\d+\."))
        parts += [re.escape(name) for name in self.extra_target_modules]
        return "|".join(f"(?:{p})" for p in parts)


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
