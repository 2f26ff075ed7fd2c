"""The ``grpo`` config block (``conf/method/grpo.yaml``) as GRPO reads it: ``GrpoSettings``,
checked. Plain values, without torch: the door (``crossmath.settings.train``) reads them before
anything heavy loads; ``crossmath.finetuning.grpo`` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from crossmath.finetuning.rewards import StepWeightedReward
from crossmath.finetuning.train_settings import LOGPROB_CHUNK
from crossmath.models.sampling_settings import SamplingSettings
from crossmath.settings.sections import check_at_least_one, check_known_fields

KL_REFERENCES = ("base", "init")  # grpo.kl_ref: the base model, or the starting adapter frozen
TRUNCATED_RULES = ("zero", "exclude", "keep")


@dataclass(frozen=True)
class GrpoSettings:
    """The ``grpo`` config block (``conf/method/grpo.yaml``), checked.

    The optimizer, adapter shape, precision, checkpoints and logging are ``train``'s
    (``TrainSettings``), shared with SFT.
    """

    steps: int = 200
    prompts_per_step: int = 16  # puzzles per step, over all workers
    rollouts: int = 4  # completions per puzzle
    max_completion_tokens: int = 6000
    truncated: str = "zero"
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    clip_low: float = 0.2
    clip_high: float = 0.2
    kl_beta: float = 0.0
    kl_ref: str = "init"  # the KL's reference: init (the starting adapter, frozen) or base
    ppo_epochs: int = 1
    rollout_batch_size: int = 64  # sequences decoded together (their prompts prefilled once each)
    micro_batch_size: int = 2  # sequences per forward/backward of the update (6000-token completions)
    logprob_chunk: int = LOGPROB_CHUNK  # positions per output-head call in the update
    reward: StepWeightedReward = field(default_factory=StepWeightedReward)

    def __post_init__(self) -> None:
        check_at_least_one("grpo", self, ("steps", "prompts_per_step", "rollouts", "ppo_epochs",
                                          "max_completion_tokens", "rollout_batch_size",
                                          "micro_batch_size", "logprob_chunk"))
        if self.truncated not in TRUNCATED_RULES:
            raise ValueError(f"grpo.truncated must be one of {TRUNCATED_RULES}, got {self.truncated!r}")
        if not (0 <= self.clip_low < 1 and self.clip_high >= 0):
            raise ValueError(f"grpo.clip_low must lie in [0, 1) and grpo.clip_high be >= 0, got "
                             f"{self.clip_low} and {self.clip_high}")
        if self.kl_beta < 0:
            raise ValueError(f"grpo.kl_beta must be >= 0, got {self.kl_beta}")
        if self.kl_ref not in KL_REFERENCES:
            raise ValueError(f"grpo.kl_ref must be one of {KL_REFERENCES}, got {self.kl_ref!r}")
        self.sampling  # checks temperature, top_k and top_p

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_k, self.top_p)

    def prompts_per_worker(self, world_size: int) -> int:
        if self.prompts_per_step % world_size:
            raise ValueError(f"grpo.prompts_per_step ({self.prompts_per_step}) must be a multiple "
                             f"of the number of workers ({world_size})")
        return self.prompts_per_step // world_size

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "GrpoSettings":
        check_known_fields("grpo", values, cls)
        values = dict(values)
        values["reward"] = StepWeightedReward.from_mapping(values.get("reward") or {})
        return cls(**values)
