"""The ``train`` config group as the training loops read it: ``TrainSettings``, checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from crossmath.finetuning.modeling import LoraSettings
from crossmath.settings.sections import check_at_least_one, check_known_fields


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
