"""SFT's loss and optimizer step, and its validation loss.

Loss: summed cross-entropy over the target tokens of an optimizer step (all micro-batches, all
workers) divided by their total count, i.e. every target token weighs the same whatever batch
or worker it lands in. Logits are computed only at positions that predict a target token, which
spares the (large-vocabulary) output projection over the prompt and padding, and the head runs
in chunks of positions (``logprobs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import torch

from crossmath.finetuning.collate import IGNORE_INDEX
from crossmath.finetuning.logprobs import target_logprobs, target_positions
from crossmath.finetuning.modeling import Precision, unwrap
from crossmath.finetuning.optimization import autocast, gradient_sync, optimizer_step
from crossmath.finetuning.worker_protocol import WorkerEnv


def summed_target_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                       positions: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy summed over the batch's target tokens (labels are aligned with inputs),
    the output head run on target positions only, in chunks (``logprobs``)."""
    return -target_logprobs(model, batch, positions).sum()


def count_target_tokens(batch: Mapping[str, torch.Tensor]) -> int:
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


@dataclass
class StepResult:
    loss_sum: torch.Tensor  # summed over this worker's target tokens, on the device
    target_tokens: int
    tokens: int
    grad_norm: torch.Tensor


def train_step(model: torch.nn.Module, micro_batches: Sequence[dict[str, torch.Tensor]],
               optimizer: torch.optim.Optimizer, scheduler: Any, env: WorkerEnv,
               precision: Precision, max_grad_norm: float) -> StepResult:
    """One optimizer step over this worker's micro-batches (gradients synchronised once)."""
    local_targets = sum(count_target_tokens(b) for b in micro_batches)
    tokens = sum(int(b["attention_mask"].sum()) for b in micro_batches)
    counts = env.all_reduce_sum(torch.tensor([float(local_targets)], device=env.device))
    # DDP averages gradients over workers; scaling by world_size / total turns that average
    # into the mean over every target token of the step. Kept on the device: no host sync.
    scale = env.world_size / counts.clamp(min=1.0)
    loss_sum = torch.zeros((), device=env.device)
    for index, host_batch in enumerate(micro_batches):
        batch = {k: v.to(env.device, non_blocking=True) for k, v in host_batch.items()}
        positions = target_positions(host_batch["labels"]).to(env.device, non_blocking=True)
        with gradient_sync(model, index == len(micro_batches) - 1):
            with autocast(env.device, precision):
                summed = summed_target_loss(model, batch, positions)
            (summed * scale).backward()
        loss_sum += summed.detach()
    grad_norm = optimizer_step(model, optimizer, scheduler, max_grad_norm)
    return StepResult(loss_sum, local_targets, tokens, grad_norm)


@torch.no_grad()
def validation_loss(model: torch.nn.Module, batches: Iterator[dict[str, torch.Tensor]],
                    env: WorkerEnv, precision: Precision) -> float:
    """Mean target-token loss over the validation rows (each worker takes its share)."""
    inner = unwrap(model)  # no DDP collectives: workers may hold unequal shares
    inner.eval()
    totals = torch.zeros(2, device=env.device)
    for batch in batches:
        batch = {k: v.to(env.device) for k, v in batch.items()}
        with autocast(env.device, precision):
            totals[0] += summed_target_loss(inner, batch).float()
        totals[1] += count_target_tokens(batch)
    inner.train()
    totals = env.all_reduce_sum(totals)
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")
