"""The optimizer step every method takes (SFT's and GRPO's): AdamW over the adapters, mixed
precision, gradients synchronised once per accumulation, clipping."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from crossmath.finetuning.modeling import Precision
from crossmath.finetuning.train_settings import TrainSettings


def adamw(model: torch.nn.Module, settings: TrainSettings, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, fused on CUDA."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr,
                             weight_decay=settings.weight_decay, fused=device.type == "cuda")


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    if precision.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.autocast)


def gradient_sync(model: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync`` for every micro-batch of an accumulation but the ``last``, whose
    backward pass then averages the accumulated gradients over workers once."""
    no_sync = getattr(model, "no_sync", None)
    return contextlib.nullcontext() if last or no_sync is None else no_sync()


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                   max_grad_norm: float) -> torch.Tensor:
    """Clip the trainable parameters' gradients, step optimizer and schedule, clear the
    gradients; returns the norm before clipping (on the device)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm.detach()
