"""Training in this process, without Ray: one worker, checkpoints in a local folder.

The same job code as the distributed path (``job.run``); only the environment differs. Benchmarks use
it as the plain single-process baseline, and tests use it where Ray's start-up would dominate.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from crossmath.finetuning.worker_protocol import WorkerJob

CHECKPOINT_PREFIX = "checkpoint-"


class LocalEnv:
    """A single worker: no wrapping, no reduction; checkpoints as ``checkpoint-<step>`` folders."""

    rank = 0
    world_size = 1

    def __init__(self, checkpoint_root: str | Path, device: str = "auto", keep: int = 2) -> None:
        self.root = Path(checkpoint_root).expanduser().resolve()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.keep = keep

    def prepare_model(self, model: torch.nn.Module, *, find_unused_parameters: bool) -> torch.nn.Module:
        return model.to(self.device)

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def checkpoints(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.name.startswith(CHECKPOINT_PREFIX))

    @contextlib.contextmanager
    def latest_checkpoint(self) -> Iterator[Path | None]:
        found = self.checkpoints()
        yield found[-1] if found else None

    def save_checkpoint(self, write: Callable[[Path], None], metrics: dict[str, Any]) -> None:
        """Written beside its final name and renamed, so a crash never leaves half a checkpoint."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{CHECKPOINT_PREFIX}{int(metrics['step']):07d}"
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            write(staging)
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for old in self.checkpoints()[:-self.keep]:
            shutil.rmtree(old)


def train_locally(job: WorkerJob, checkpoint_root: str | Path, device: str = "auto") -> dict[str, Any]:
    """Run (or resume) ``job`` in this process; returns the summary metrics."""
    env = LocalEnv(checkpoint_root, device, keep=job.settings.keep_checkpoints)
    return job.run(env)
