"""What a GRPO rollout earns: the study's step-weighted share of correct blanks.

The study rewards a completion with the share of blanks it fills correctly, each blank weighted
by how deep in the solving it sits::

    r = sum_i w_i [blank i correct] / sum_i w_i

The blank's depth is its wave label (``stepK``: the propagation wave in which it becomes
determined; the training rows' ``steps`` column). The exact weights are not published; by
default ``w = depth``, so a blank of wave 3 counts three times a blank of wave 1.
``step_weights: [w1, w2, ...]`` sets them per depth instead (depths past the list take its
last weight).

"Correct" is the release's rule, reused from the evaluation: the answer is the last
``<answer>`` block (``extract_answer``), its tokens are compared position by position with the
gold tokens as strings (``position_hits``). So the reward is the evaluation's micro accuracy
with depth weights. Consequences, each deliberate:

- no ``<answer>`` block: 0;
- missing tokens are wrong blanks; extra tokens after the last blank are ignored, as the
  release's micro accuracy ignores them;
- the optional format term (``format_weight`` f, 0 by default: the study reports none) mixes in
  whether the answer has exactly one token per blank: ``r = (1 - f) r_blanks + f [count right]``,
  so a completion with a wrong count loses f even where its first tokens are right. The reward
  stays in [0, 1];
- the optional overlong term (``overlong_buffer`` L, 0 by default: the study reports none) is
  DAPO's soft overlong punishment (Yu et al. 2025, "overlong reward shaping"): with the cap
  ``max_completion_tokens`` = M, a completion of n tokens loses nothing up to M - L tokens,
  ``(n - (M - L)) / L`` within the last L tokens, and 1 when truncated at the cap. It tells the
  policy that running into the cap costs, before the cap cuts the answer off; the reward then
  lies in [-1, 1]. It needs the completion's length, so the loop adds it (``overlong_penalty``).

Imports neither torch nor Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from crossmath.metrics.accuracy import position_hits
from crossmath.metrics.answers import extract_answer
from crossmath.settings.sections import check_known_fields


class Reward(Protocol):
    """Scores one completion (its decoded text) of one training row."""

    def __call__(self, row: Mapping[str, Any], output: str) -> float: ...


@dataclass(frozen=True)
class StepWeightedReward:
    """The study's reward (``grpo.reward`` in the config); see the module docstring."""

    step_weights: tuple[float, ...] | None = None
    format_weight: float = 0.0
    overlong_buffer: int = 0  # tokens before the cap where the overlong penalty ramps up (0: off)

    def __post_init__(self) -> None:
        if self.step_weights is not None:
            if not self.step_weights or any(w < 0 for w in self.step_weights):
                raise ValueError(f"grpo.reward.step_weights must be non-negative weights per "
                                 f"depth (or null for w = depth), got {list(self.step_weights)}")
            if not any(w > 0 for w in self.step_weights):
                raise ValueError("grpo.reward.step_weights are all 0: no blank would count")
        if not 0 <= self.format_weight < 1:
            raise ValueError(f"grpo.reward.format_weight must lie in [0, 1), got {self.format_weight}")
        if self.overlong_buffer < 0:
            raise ValueError(f"grpo.reward.overlong_buffer must be >= 0, got {self.overlong_buffer}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "StepWeightedReward":
        check_known_fields("grpo.reward", values, cls)
        weights = values.get("step_weights")
        return cls(None if weights is None else tuple(float(w) for w in weights),
                   float(values.get("format_weight", 0.0)), int(values.get("overlong_buffer", 0)))

    def weight(self, depth: int) -> float:
        """The weight of a blank solved in wave ``depth`` (1 = the first wave)."""
        if depth < 1:
            raise ValueError(f"a blank's depth (step label) must be at least 1, got {depth}")
        if self.step_weights is None:
            return float(depth)
        return self.step_weights[min(depth, len(self.step_weights)) - 1]

    def score(self, pred: Sequence[str] | None, gold: Sequence[str], steps: Sequence[int]) -> float:
        """The reward of the answer tokens ``pred`` (None: no answer block) for one puzzle."""
        if len(steps) != len(gold) or not gold:
            raise ValueError(f"{len(steps)} step labels for {len(gold)} gold tokens")
        if pred is None:
            return 0.0
        weights = [self.weight(depth) for depth in steps]
        total = sum(weights)
        if total == 0:  # every blank of this puzzle sits at a depth weighted 0
            raise ValueError(f"step weights {self.step_weights} give the depths {list(steps)} no weight")
        correct = sum(w for w, hit in zip(weights, position_hits(pred, gold)) if hit)
        blanks = correct / total
        if not self.format_weight:
            return blanks
        return (1 - self.format_weight) * blanks + self.format_weight * float(len(pred) == len(gold))

    def __call__(self, row: Mapping[str, Any], output: str) -> float:
        return self.score(extract_answer(output), row["answer"], row["steps"])

    def overlong_penalty(self, length: int, max_tokens: int, truncated: bool) -> float:
        """What a completion of ``length`` tokens loses for nearing the cap (0 when off)."""
        if not self.overlong_buffer:
            return 0.0
        if truncated:
            return 1.0
        buffer = min(self.overlong_buffer, max_tokens)
        return min(max(length - (max_tokens - buffer), 0) / buffer, 1.0)
