"""Distributed training on Ray Train: ``TorchTrainer`` running a job (SFT or GRPO) on N workers.

Each worker gets a ``RayEnv``: its rank and device from Ray Train, DDP through
``ray.train.torch.prepare_model`` (gloo on CPU, NCCL on GPU), sums through
``torch.distributed``, and checkpoints through ``ray.train.report``. Rank 0 writes the
checkpoint; every worker calls ``report`` at the same steps, as Ray Train requires.

Examples reach the workers through Ray's object store: the driver, which built the set, reads
it once and puts the table there, so worker nodes need no access to the driver's disk, and
the workers of one node share one copy in memory (Arrow buffers are read in place).

Resuming: Ray Train (V2) keeps a run's state under ``storage_path/name``; running again with
the same pair picks up the latest reported checkpoint, which the job continues from.
Ray Train also restarts the workers from that checkpoint by itself after a worker dies, up to
``max_failures`` times.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import torch

from crossmath.finetuning.scaling import RayScaling
from crossmath.finetuning.worker_protocol import WorkerJob


@dataclass(frozen=True)
class SharedTable:
    """The example table in Ray's object store; calling it on a worker returns the table."""

    ref: Any

    def __call__(self) -> pa.Table:
        import ray

        return ray.get(self.ref)


def share_examples(table: pa.Table) -> SharedTable:
    import ray

    return SharedTable(ray.put(table))


class RayEnv:
    """The worker environment inside a Ray Train worker."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()

    def prepare_model(self, model: torch.nn.Module, *, find_unused_parameters: bool) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model, parallel_strategy_kwargs={
            "find_unused_parameters": find_unused_parameters, **_no_buffer_sync()})

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return values
        reduced = values.clone()
        torch.distributed.all_reduce(reduced)
        return reduced

    @contextlib.contextmanager
    def latest_checkpoint(self) -> Iterator[Path | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as folder:
            yield Path(folder)

    def save_checkpoint(self, write: Callable[[Path], None], metrics: dict[str, Any]) -> None:
        import ray.train

        with tempfile.TemporaryDirectory(prefix="crossmath-checkpoint-") as folder:
            checkpoint = None
            if self.rank == 0:
                write(Path(folder))
                checkpoint = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(_plain(metrics), checkpoint=checkpoint)


def _no_buffer_sync() -> dict[str, bool]:
    """DDP options that skip the per-step buffer broadcast: the buffers (rotary frequencies)
    never change. Newer torch names the option ``forward_sync_buffers``."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    options = inspect.signature(DistributedDataParallel.__init__).parameters
    if "forward_sync_buffers" in options:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}


def _train_loop(config: dict[str, Any]) -> None:
    # A worker process has no logging set up: without this, rank 0's start line (the adapters
    # per layer type) and warnings would not reach the driver's console.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config["job"].run(RayEnv())


def fit(job: WorkerJob, scaling: RayScaling, *, storage_path: str | Path, name: str):
    """Run ``job`` on Ray Train; resumes the run ``storage_path/name`` if it exists.

    Returns Ray's ``Result``: ``metrics`` is the final summary, ``checkpoint`` holds the
    final adapter. Raises ``ray.train.TrainingFailedError`` when the run fails.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage = Path(storage_path).expanduser()
    if not storage.is_absolute():  # Ray Train V2 rejects relative storage paths
        storage = storage.resolve()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"job": job},
        torch_config=TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=scaling.num_workers, use_gpu=scaling.use_gpu,
                                     resources_per_worker={"CPU": scaling.cpus_per_worker}),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=job.settings.keep_checkpoints),
            failure_config=FailureConfig(max_failures=scaling.max_failures),
        ),
    )
    return trainer.fit()
