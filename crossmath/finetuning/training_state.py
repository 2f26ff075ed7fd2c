"""What a worker's loop (SFT's or GRPO's) saves in a checkpoint and reports as it goes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from crossmath.finetuning.checkpoints import Progress, write_checkpoint
from crossmath.finetuning.worker_protocol import WorkerEnv


@dataclass
class TrainingState:
    """What a worker's loop (SFT's or GRPO's) saves in a checkpoint and reports as it goes."""

    env: WorkerEnv
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    progress: Progress
    sink: Callable[[Mapping[str, float], int], None] | None  # the job's metrics, sent by rank 0

    def report(self, metrics: Mapping[str, float]) -> None:
        """``metrics`` at the current step to the sink, from rank 0 only."""
        if self.sink is not None and self.env.rank == 0:
            self.sink(metrics, self.progress.step)

    def log_window(self, metrics: dict[str, float]) -> None:
        """Report a flushed window's metrics with the learning rate (and peak GPU memory); its
        ``tokens`` are added to the progress instead."""
        self.progress.tokens_seen += int(metrics.pop("tokens"))
        metrics["train/lr"] = self.scheduler.get_last_lr()[0]
        device = self.env.device
        if device.type == "cuda":
            metrics["train/peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        self.report(metrics)

    def checkpoint(self, metrics: Mapping[str, Any]) -> None:
        """Save adapter, optimizer, schedule and progress at the current step (every worker
        calls this at the same steps)."""
        def write(out: Path) -> None:
            write_checkpoint(out, self.model, self.optimizer, self.scheduler, self.progress)

        self.env.save_checkpoint(write, {"step": self.progress.step, **metrics})
