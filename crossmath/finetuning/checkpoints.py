"""What a training checkpoint holds (adapter, optimizer and schedule state, RNG, progress),
written, read back, and resumed from."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crossmath.finetuning.modeling import load_adapter_weights, save_adapter
from crossmath.finetuning.worker_protocol import WorkerEnv

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
STATE_FILE = "trainer_state.pt"
PROGRESS_FILE = "progress.json"


@dataclass
class Progress:
    """The counters a checkpoint stores besides weights and optimizer state."""

    step: int = 0
    tokens_seen: int = 0
    resumed_from: int | None = None

    def to_json(self) -> str:
        return json.dumps({"step": self.step, "tokens_seen": self.tokens_seen})

    @property
    def resumed_from_step(self) -> int:
        """The step this run resumed from; -1 for a fresh start (Ray keeps numbers only)."""
        return -1 if self.resumed_from is None else self.resumed_from


def write_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, progress: Progress) -> None:
    save_adapter(model, folder / ADAPTER_DIR)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               folder / STATE_FILE)
    (folder / PROGRESS_FILE).write_text(progress.to_json() + "\n", encoding="utf-8")


def read_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> Progress:
    for name in (ADAPTER_DIR, STATE_FILE, PROGRESS_FILE):
        if not (folder / name).exists():
            raise FileNotFoundError(f"checkpoint {folder} lacks {name}")
    load_adapter_weights(model, folder / ADAPTER_DIR)
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    saved = json.loads((folder / PROGRESS_FILE).read_text(encoding="utf-8"))
    return Progress(step=int(saved["step"]), tokens_seen=int(saved["tokens_seen"]),
                    resumed_from=int(saved["step"]))


def resume(env: WorkerEnv, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: Any, total: int) -> Progress:
    """The progress of the latest checkpoint, its state loaded; a fresh ``Progress`` without one."""
    with env.latest_checkpoint() as folder:
        if folder is None:
            return Progress()
        progress = read_checkpoint(folder, model, optimizer, scheduler)
    log.info("rank %d resumed from step %d of %d", env.rank, progress.step, total)
    return progress
