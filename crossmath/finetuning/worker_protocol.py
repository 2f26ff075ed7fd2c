"""What a training worker and whoever runs it (a plain process, or Ray Train) hand each other.

A job (SFT's ``loop.TrainJob``, ``grpo.GrpoJob``) runs on each worker with a ``WorkerEnv``: the
rank and device, how the model is wrapped, how sums are reduced across workers, and where
checkpoints go. That is all that differs between one process and N Ray Train workers.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from crossmath.finetuning.train_settings import TrainSettings


class WorkerEnv(Protocol):
    """What a worker needs from whoever runs it (a plain process, or Ray Train)."""

    rank: int
    world_size: int
    device: torch.device

    def prepare_model(self, model: torch.nn.Module, *, find_unused_parameters: bool) -> torch.nn.Module:
        """Move to the device and wrap for data parallelism where there are several workers."""

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over workers (the tensor itself with one worker)."""

    def latest_checkpoint(self) -> contextlib.AbstractContextManager[Path | None]:
        """A local folder holding the checkpoint to resume from, or None for a fresh start."""

    def save_checkpoint(self, write: Callable[[Path], None], metrics: dict[str, Any]) -> None:
        """Every worker calls this at the same steps; rank 0's ``write`` fills the folder."""


class WorkerJob(Protocol):
    """A training job as the runners see it (SFT's ``TrainJob``, ``grpo.GrpoJob``): picklable,
    with its settings, run on each worker."""

    settings: TrainSettings

    def run(self, env: WorkerEnv) -> dict[str, Any]:
        """Train (or resume) on this worker; returns the run's summary metrics."""
