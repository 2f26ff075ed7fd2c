"""``SamplingSettings``: the temperature, top-k and top-p of a draw, checked.

Plain values, without torch, so that a door (``crossmath.settings.train`` reading ``grpo``)
checks them without loading it; ``crossmath.models.sampling`` applies them to logits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingSettings:
    """How logits become a distribution before the draw: temperature, then top-k, then top-p
    (``crossmath.models.sampling.warp``)."""

    temperature: float = 1.0
    top_k: int = 0  # 0: no cut
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
