"""The ``train`` config group as the training loops read it: ``TrainSettings``, checked, with
its adapters' ``LoraSettings`` (``train.lora``). Plain values, without torch: the door
(``crossmath.settings.train``) reads them before anything heavy loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from crossmath.settings.sections import check_at_least_one, check_known_fields

AUTO = "auto"  # target_modules: every linear projection of the decoder layers (lora_targets)
VISION_MODES = ("frozen", "lora", "full")
LOGPROB_CHUNK = 1024  # positions per output-head call: ~0.6 GB of fp32 logits at a 152k vocabulary


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


def target_regex(module: str, names: Sequence[str], blocks: str = "") -> str:
    """A regular expression (peft full-matches it) for modules called ``names`` under ``module``."""
    alternatives = "|".join(re.escape(n) for n in names)
    return rf"(?:.*\.)?{re.escape(module)}\.{blocks}(?:.*\.)?(?:{alternatives})"


@dataclass(frozen=True)
class TrainSettings:
    """The ``train`` config group, checked; defaults are those of ``conf/train/lora.yaml``."""

    lora: LoraSettings = field(default_factory=LoraSettings)
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    batch_size: int = 4
    grad_accumulation: int = 4
    epochs: int = 2
    max_steps: int | None = None
    precision: str = "auto"
    gradient_checkpointing: bool = True
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_every: int = 200
    log_every: int = 10
    validation_fraction: float = 0.02
    loader_threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check_at_least_one("train", self, ("batch_size", "grad_accumulation", "epochs", "log_every",
                                           "keep_checkpoints"))
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"train.max_steps must be at least 1 or null, got {self.max_steps}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainSettings":
        check_known_fields("train", values, cls)
        values = dict(values)
        lora = dict(values.pop("lora", {}) or {})
        check_known_fields("train.lora", lora, LoraSettings)
        for key in ("target_modules", "extra_target_modules", "vision_target_modules"):
            if key in lora and not isinstance(lora[key], str):
                lora[key] = tuple(lora[key])
        return cls(lora=LoraSettings(**lora), **values)
