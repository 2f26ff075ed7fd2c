"""The SFT training loop: one worker's view of LoRA SFT.

``run_worker`` is the whole of training on one worker. What differs between running it alone
and running it as one of N Ray Train workers is only the small ``WorkerEnv`` it is handed
(``worker_protocol``). The step and the loss (``sft_step``), the schedule (``schedule``),
validation and checkpoint contents (``checkpoints``) are written once, so a single-process run
and a distributed one cannot drift apart. GRPO (``grpo.py``) shares the model setup
(``worker_model``), optimizer (``optimization``), schedule, resume, checkpoints and metric
reporting (``training_state``, ``reporting``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pyarrow as pa
import torch

from crossmath.finetuning.batches import BatchMaker
from crossmath.finetuning.checkpoints import resume
from crossmath.finetuning.collate import ExampleEncoder
from crossmath.finetuning.dataset import split_validation
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.optimization import adamw
from crossmath.finetuning.reporting import WindowClock
from crossmath.finetuning.schedule import Schedule
from crossmath.finetuning.sft_step import StepResult, train_step, validation_loss
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.finetuning.training_state import TrainingState
from crossmath.finetuning.worker_model import prepare_worker_model
from crossmath.finetuning.worker_protocol import WorkerEnv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs, picklable: the model as the driver resolved it (its prompt set
    read), settings, examples, metric sink."""

    spec: ModelSpec
    settings: TrainSettings
    load_examples: Callable[[], pa.Table]
    metrics: Callable[[Mapping[str, float], int], None] | None = None

    def run(self, env: WorkerEnv) -> dict[str, Any]:
        """Train on one worker (see ``run_worker``); every way of running a job calls this."""
        return run_worker(self, env)


def run_worker(job: TrainJob, env: WorkerEnv) -> dict[str, Any]:
    """Train (or resume training) to the last step; returns the run's summary metrics."""
    from transformers import get_cosine_schedule_with_warmup

    settings = job.settings
    torch.manual_seed(settings.seed)
    prepared = prepare_worker_model(job.spec, settings, env)
    model, precision, counts = prepared.model, prepared.precision, prepared.counts

    train_rows, validation_rows = split_validation(job.load_examples(), settings.validation_fraction,
                                                   settings.seed)
    schedule = Schedule(train_rows.num_rows, env.world_size, settings.batch_size,
                        settings.grad_accumulation, settings.epochs, settings.max_steps, settings.seed)
    total = schedule.total_steps
    optimizer = adamw(model, settings, env.device)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(settings.warmup_ratio * total),
                                                total)
    progress = resume(env, model, optimizer, scheduler, total)
    summary: dict[str, Any] = {
        **counts, "total_steps": total, "steps_per_epoch": schedule.steps_per_epoch,
        "train_examples": train_rows.num_rows, "validation_examples": validation_rows.num_rows,
        "resumed_from_step": progress.resumed_from_step,
    }
    if progress.step >= total:  # a finished run started again: its final checkpoint stands
        log.info("rank %d: the run already finished at step %d", env.rank, progress.step)
        return summary

    pad_id = prepared.pad_token_id
    encoder = ExampleEncoder(prepared.processor, prepared.spec)
    train_batches = BatchMaker(train_rows, encoder, pad_id, settings.loader_threads,
                               pin_memory=env.device.type == "cuda")
    state = TrainingState(env, model, optimizer, scheduler, progress, job.metrics)

    def validate() -> float | None:
        if validation_rows.num_rows == 0:
            return None
        maker = BatchMaker(validation_rows, encoder, pad_id, 0)
        indices = list(range(env.rank, validation_rows.num_rows, env.world_size))
        plan = (indices[i:i + settings.batch_size] for i in range(0, len(indices), settings.batch_size))
        return validation_loss(model, maker.stream(plan), env, precision)

    plan = (batch for step in range(progress.step, total)
            for batch in schedule.micro_batches(step, env.rank))
    stream = train_batches.stream(plan, lookahead=2 * settings.grad_accumulation)
    window = _Window(env.device)
    last_loss = float("nan")
    try:
        while progress.step < total:
            micro = [next(stream) for _ in range(settings.grad_accumulation)]
            result = train_step(model, micro, optimizer, scheduler, env, precision,
                                settings.max_grad_norm)
            progress.step += 1
            window.add(result)
            at_end = progress.step == total
            if progress.step % settings.log_every == 0 or at_end:
                metrics = window.flush(env)
                metrics["train/epoch"] = progress.step / schedule.steps_per_epoch
                last_loss = metrics["train/loss"]
                state.log_window(metrics)
            with window.paused():
                if settings.eval_every and (progress.step % settings.eval_every == 0 or at_end):
                    value = validate()
                    if value is not None:
                        state.report({"val/loss": value})
                    summary["val_loss"] = value
                if (not at_end and settings.checkpoint_every
                        and progress.step % settings.checkpoint_every == 0):
                    state.checkpoint({"train/loss": last_loss})
    finally:
        train_batches.close()
    summary.update(final_step=progress.step, tokens_seen=progress.tokens_seen,
                   final_train_loss=last_loss, tokens_per_s=window.mean_tokens_per_s)
    if env.device.type == "cuda":
        summary["peak_memory_gb"] = torch.cuda.max_memory_allocated(env.device) / 2**30
    state.checkpoint(summary)
    return summary


class _Window(WindowClock):
    """Sums over the steps since the last log line; reduced across workers when flushed.

    Time spent in validation and checkpoints is left out, so tokens/s measures training.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.sums = torch.zeros(3, device=device)  # loss, target tokens, tokens
        self.grad_norm = torch.zeros((), device=device)
        self.steps = 0
        self.total_tokens = 0.0
        self.total_seconds = 0.0

    def add(self, result: StepResult) -> None:
        self.sums[0] += result.loss_sum.float()
        self.sums[1] += result.target_tokens
        self.sums[2] += result.tokens
        self.grad_norm += result.grad_norm.float()
        self.steps += 1

    def flush(self, env: WorkerEnv) -> dict[str, float]:
        totals = env.all_reduce_sum(self.sums).tolist()
        seconds = self.lap()
        metrics = {
            "train/loss": totals[0] / max(totals[1], 1.0),
            "train/tokens_per_s": totals[2] / seconds,
            "train/step_time_s": seconds / max(self.steps, 1),
            "train/grad_norm": float(self.grad_norm) / max(self.steps, 1),
            "tokens": totals[2],
        }
        self.total_tokens += totals[2]
        self.total_seconds += seconds
        self.sums.zero_()
        self.grad_norm.zero_()
        self.steps = 0
        return metrics

    @property
    def mean_tokens_per_s(self) -> float:
        return self.total_tokens / self.total_seconds if self.total_seconds else float("nan")
