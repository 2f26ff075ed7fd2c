"""The GRPO maths: group-normalised advantages, the clipped policy-gradient loss, the KL term.

Conventions (the reference for each is the documented behaviour of GRPO as DeepSeekMath
introduced it, with DAPO's token-level averaging):

- **Advantages.** Each puzzle's n completions form a group. A completion's advantage is its
  reward minus the group's mean, divided by the group's standard deviation, the *sample* one
  (``ddof=1``, as ``torch.std`` computes it). A group whose rewards are all equal (std 0)
  carries no signal: its advantages are 0, and such groups are counted. Completions left out of
  the loss (truncated ones, when configured so) are left out of their group's statistics too;
  a group with fewer than two completions left has advantage 0 as well.
- **Loss.** Per completion token t of completion i, with ``ratio = pi(t) / pi_old(t)``::

      l_t = -min(ratio A_i, clip(ratio, 1 - eps_low, 1 + eps_high) A_i) + beta KL_t

  averaged over *tokens*: the sum over every completion token of a step (all completions, all
  workers) divided by their count, so a long completion weighs by its length (as in DAPO), not
  as one sequence (the original GRPO's per-sequence mean).
- **KL.** The k3 estimator of KL(pi || pi_ref), ``exp(r - p) - (r - p) - 1`` with p, r the
  token's log-probabilities under the policy and the reference: non-negative, 0 where they agree.

Log-probabilities are those of the sampling distribution's temperature (logits / T), as the
rollouts were drawn; top-k and top-p cuts are not part of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ZERO_STD = 1e-6  # rewards are shares of blanks: a smaller spread is an exact tie


@dataclass(frozen=True)
class GroupAdvantages:
    """Advantages of a (groups, completions) grid of rewards, and which groups were all ties."""

    advantages: torch.Tensor  # (groups, n), 0 where left out
    zero_variance: torch.Tensor  # (groups,) bool


def group_advantages(rewards: torch.Tensor, included: torch.Tensor | None = None) -> GroupAdvantages:
    """``(r - mean) / std`` within each row of ``rewards`` (shape (groups, n)); see the module
    docstring. ``included`` (bool, same shape) leaves completions out of the statistics."""
    rewards = rewards.double()
    if included is None:
        included = torch.ones_like(rewards, dtype=torch.bool)
    weights = included.double()
    count = weights.sum(dim=1, keepdim=True)
    mean = (rewards * weights).sum(dim=1, keepdim=True) / count.clamp(min=1)
    squares = ((rewards - mean) ** 2 * weights).sum(dim=1, keepdim=True)
    std = (squares / (count - 1).clamp(min=1)).sqrt()
    flat = (count < 2) | (std < ZERO_STD)
    advantages = torch.where(flat | ~included, torch.zeros_like(rewards),
                             (rewards - mean) / std.clamp(min=ZERO_STD))
    return GroupAdvantages(advantages.float(), flat.squeeze(1))


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(target) for each row of ``logits`` (positions, vocabulary), at ``temperature``."""
    scaled = logits.float() if temperature == 1 else logits.float() / temperature
    return -torch.nn.functional.cross_entropy(scaled, targets, reduction="none")


@dataclass(frozen=True)
class TokenLoss:
    """Per-token terms of the GRPO loss (not yet averaged)."""

    loss: torch.Tensor  # policy-gradient term + beta * KL
    clipped: torch.Tensor  # bool: the clipped branch of the min was taken
    kl: torch.Tensor  # k3 estimate per token (0 where no reference was given)


def grpo_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, *,
                    clip_low: float, clip_high: float, ref_logp: torch.Tensor | None = None,
                    kl_beta: float = 0.0) -> TokenLoss:
    """The clipped objective per token; ``advantages`` are the tokens' completions' advantages."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    kl = torch.zeros_like(logp) if ref_logp is None else k3_kl(logp, ref_logp)
    if kl_beta:
        loss = loss + kl_beta * kl
    return TokenLoss(loss, clipped < unclipped, kl.detach())


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """The k3 estimate of KL(pi || pi_ref) per token: ``exp(r - p) - (r - p) - 1``."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1
