"""Where LoRA adapters go, read off the model's own decoder layers, and a census of where they went.

``target_modules: auto`` (the default) adapts every linear projection of every decoder layer of
the language model, whatever the layer's kind: on Qwen2.5-VL and Qwen3-VL that is
``q_proj k_proj v_proj o_proj gate_proj up_proj down_proj``; on Qwen3.5, whose decoder mixes
linear-attention (Gated DeltaNet) layers with full-attention ones, it adds the linear-attention
projections ``in_proj_qkv in_proj_z in_proj_a in_proj_b out_proj``. A fixed list of names
misses whatever a new family calls its projections; reading the layers does not.

After the adapters are in place, ``AdapterCensus`` counts them per layer type (the config's
``layer_types`` where the family has them, else the attention module's name) and says so in one
line, with the trainable parameters; a decoder layer left without an adapter on its attention is
a warning, since that is how a hybrid model's linear-attention layers went untrained before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch

from crossmath.finetuning.train_settings import AUTO

ATTENTION_CHILDREN = ("self_attn", "linear_attn", "attn", "attention")
LAYER_TYPE_OF_CHILD = {"linear_attn": "linear_attention"}  # any other attention: full


def decoder_layers(model: torch.nn.Module, language_model: str) -> list[tuple[str, torch.nn.Module]]:
    """(name, layer) of each decoder layer: the ``layers`` list under ``language_model``."""
    suffix = f"{language_model}.layers"
    for name, module in model.named_modules():
        if (name == suffix or name.endswith("." + suffix)) and isinstance(module, torch.nn.ModuleList):
            return [(f"{name}.{index}", layer) for index, layer in enumerate(module)]
    raise ValueError(f"no decoder layers found at '*{suffix}'; check train.lora.language_model")


def linear_projection_names(model: torch.nn.Module, language_model: str) -> tuple[str, ...]:
    """The leaf names of every ``nn.Linear`` inside the decoder layers, sorted."""
    names = {child.rsplit(".", 1)[-1]
             for _, layer in decoder_layers(model, language_model)
             for child, module in layer.named_modules() if isinstance(module, torch.nn.Linear)}
    return tuple(sorted(names))


def resolve_target_modules(model: torch.nn.Module, language_model: str,
                           target_modules: Sequence[str] | str) -> tuple[str, ...]:
    """``target_modules`` as names: ``auto`` becomes the model's own linear projections."""
    if target_modules == AUTO or list(target_modules) == [AUTO]:
        return linear_projection_names(model, language_model)
    return tuple(target_modules)


def layer_type(layer: torch.nn.Module, index: int, layer_types: Sequence[str] | None) -> str:
    """A decoder layer's kind: the config's ``layer_types`` entry, else from its attention module."""
    if layer_types is not None and index < len(layer_types):
        return str(layer_types[index])
    child = attention_child(layer)
    return LAYER_TYPE_OF_CHILD.get(child or "", "full_attention")


def attention_child(layer: torch.nn.Module) -> str | None:
    """The name of the layer's attention (token-mixing) module."""
    children = dict(layer.named_children())
    return next((name for name in ATTENTION_CHILDREN if name in children), None)


@dataclass(frozen=True)
class LayerAdapters:
    index: int
    kind: str
    adapted: tuple[str, ...]  # leaf names of the adapted modules, sorted
    attention_adapted: bool


@dataclass(frozen=True)
class AdapterCensus:
    """Adapters per decoder layer, and the model's trainable and total parameters."""

    layers: tuple[LayerAdapters, ...]
    outside: tuple[str, ...]  # adapted modules outside the decoder layers (e.g. lm_head)
    vision: str  # the vision tower's mode
    trainable: int
    total: int

    @classmethod
    def of(cls, peft_model: torch.nn.Module, language_model: str, vision: str) -> "AdapterCensus":
        base = peft_model.get_base_model() if hasattr(peft_model, "get_base_model") else peft_model
        config = getattr(base.config, "text_config", base.config)
        layer_types = getattr(config, "layer_types", None)
        layers, inside = [], set()
        for index, (name, layer) in enumerate(decoder_layers(base, language_model)):
            adapted = sorted(child for child, module in layer.named_modules() if _is_adapted(module))
            inside.update(f"{name}.{child}" for child in adapted)
            attention = attention_child(layer)
            layers.append(LayerAdapters(
                index, layer_type(layer, index, layer_types),
                tuple(sorted(child.rsplit(".", 1)[-1] for child in adapted)),
                attention is not None and any(child.startswith(attention + ".") for child in adapted)))
        outside = sorted(name for name, module in base.named_modules()
                         if _is_adapted(module) and name not in inside)
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in peft_model.parameters())
        return cls(tuple(layers), tuple(outside), vision, trainable, total)

    def per_type(self) -> dict[str, Counter]:
        """For each layer type, how many layers carry each adapted module name."""
        counts: dict[str, Counter] = {}
        for layer in self.layers:
            counts.setdefault(layer.kind, Counter()).update(layer.adapted)
        return counts

    def without_attention_adapters(self) -> list[LayerAdapters]:
        return [layer for layer in self.layers if not layer.attention_adapted]

    def line(self) -> str:
        """One line: adapters per layer type, the vision tower, trainable parameters."""
        kinds = Counter(layer.kind for layer in self.layers)
        parts = []
        for kind, names in self.per_type().items():
            per_layer = sorted({len(layer.adapted) for layer in self.layers if layer.kind == kind})
            listed = " ".join(f"{name}" if count == kinds[kind] else f"{name}x{count}"
                              for name, count in sorted(names.items()))
            parts.append(f"{kinds[kind]} {kind} layers x {'/'.join(map(str, per_layer))} "
                         f"({listed or 'none'})")
        outside = f"; also {' '.join(self.outside)}" if self.outside else ""
        share = 100 * self.trainable / self.total if self.total else 0.0
        return (f"LoRA adapters: {', '.join(parts)}{outside}; vision tower {self.vision}; "
                f"trainable parameters {self.trainable:,} of {self.total:,} ({share:.2f}%)")

    def warnings(self) -> list[str]:
        missing = self.without_attention_adapters()
        if not missing:
            return []
        kinds = sorted({layer.kind for layer in missing})
        return [f"{len(missing)} of {len(self.layers)} decoder layers ({', '.join(kinds)}; layers "
                f"{_ranges([layer.index for layer in missing])}) get no adapter on their attention; "
                "set train.lora.target_modules to auto or add their projections"]


def _is_adapted(module: torch.nn.Module) -> bool:
    return hasattr(module, "lora_A") and hasattr(module, "base_layer")


def _ranges(indices: list[int]) -> str:
    text = ",".join(map(str, indices[:12]))
    return text + ("..." if len(indices) > 12 else "")
