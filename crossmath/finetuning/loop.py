"""The training loop every path runs: one worker's view of LoRA SFT.

``run_worker`` is the whole of training on one worker. What differs between running it alone
and running it as one of N Ray Train workers is only the small ``WorkerEnv`` it is handed: the
rank and device, how the model is wrapped (DDP or not), how sums are reduced across workers, and
where checkpoints go. The step, the loss, the schedule, validation and checkpoint contents are
written once, here, so a single-process run and a distributed one cannot drift apart. GRPO
(``grpo.py``) reuses the model setup, optimizer, schedule, resume, checkpoints and metric
reporting from here.

Loss: summed cross-entropy over the target tokens of an optimizer step (all micro-batches, all
workers) divided by their total count, i.e. every target token weighs the same whatever batch
or worker it lands in. Logits are computed only at positions that predict a target token, which
spares the (large-vocabulary) output projection over the prompt and padding, and the head runs
in chunks of positions (``logprobs.py``).

Data order is a function of (seed, epoch) alone: each optimizer step takes the next
``world_size x batch_size x grad_accumulation`` examples of the epoch's permutation, worker r
every r-th of them. A resumed run therefore continues with exactly the batch it would have
seen, from the step stored in the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import numpy as np
import pyarrow as pa
import torch

from crossmath.finetuning.collate import (
    EXAMPLE_COLUMNS,
    IGNORE_INDEX,
    ExampleEncoder,
    collate,
    padding_token_id,
)
from crossmath.finetuning.dataset import split_validation
from crossmath.finetuning.logprobs import target_logprobs, target_positions
from crossmath.finetuning.modeling import (
    LoraSettings,
    ModelSpec,
    Precision,
    adapter_census,
    add_lora,
    load_adapter_weights,
    load_base_model,
    load_initial_adapter,
    load_processor_for,
    log_adapter_census,
    save_adapter,
    unwrap,
)
from crossmath.finetuning.policy_passes import load_reference_adapter
from crossmath.settings.sections import check_at_least_one, check_known_fields

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
STATE_FILE = "trainer_state.pt"
PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class TrainSettings:
    """The ``train`` config group, checked; defaults are those of ``conf/train/lora.yaml``."""

    lora: LoraSettings = field(default_factory=LoraSettings)
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    batch_size: int = 4
    grad_accumulation: int = 4
    epochs: int = 2
    max_steps: int | None = None
    precision: str = "auto"
    gradient_checkpointing: bool = True
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_every: int = 200
    log_every: int = 10
    validation_fraction: float = 0.02
    loader_threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check_at_least_one("train", self, ("batch_size", "grad_accumulation", "epochs", "log_every",
                                           "keep_checkpoints"))
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"train.max_steps must be at least 1 or null, got {self.max_steps}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainSettings":
        check_known_fields("train", values, cls)
        values = dict(values)
        lora = dict(values.pop("lora", {}) or {})
        check_known_fields("train.lora", lora, LoraSettings)
        for key in ("target_modules", "extra_target_modules", "vision_target_modules"):
            if key in lora and not isinstance(lora[key], str):
                lora[key] = tuple(lora[key])
        return cls(lora=LoraSettings(**lora), **values)


@dataclass(frozen=True)
class Schedule:
    """Which examples each worker trains on at each optimizer step."""

    n_examples: int
    world_size: int
    batch_size: int
    grad_accumulation: int
    epochs: int
    max_steps: int | None
    seed: int

    @property
    def examples_per_step(self) -> int:
        return self.world_size * self.batch_size * self.grad_accumulation

    @property
    def steps_per_epoch(self) -> int:
        """Whole steps only: every worker must run the same number of micro-batches."""
        steps = self.n_examples // self.examples_per_step
        if steps == 0:
            raise ValueError(
                f"{self.n_examples} training examples cannot fill one step of "
                f"{self.examples_per_step} (workers x batch_size x grad_accumulation)"
            )
        return steps

    @property
    def total_steps(self) -> int:
        total = self.steps_per_epoch * self.epochs
        return min(total, self.max_steps) if self.max_steps else total

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_examples)
        chunk = order[in_epoch * self.examples_per_step:(in_epoch + 1) * self.examples_per_step]
        mine = chunk[rank::self.world_size].tolist()
        return [mine[i * self.batch_size:(i + 1) * self.batch_size]
                for i in range(self.grad_accumulation)]


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


@dataclass(frozen=True)
class MetricSink:
    """Where rank 0 sends metrics: an open MLflow run.

    ``logged`` holds, per metric, the last step the run already has: a run resumed from a
    checkpoint repeats the steps after it, which the run before the stop may have logged, and
    those are not logged a second time (resumed runs recompute the same values, timings aside).
    """

    tracking_uri: str
    run_id: str
    logged: Mapping[str, int] = field(default_factory=dict)

    def __call__(self, metrics: Mapping[str, float], step: int) -> None:
        from crossmath.tracking import mlflow_store as tracking

        fresh = {name: value for name, value in metrics.items() if step > self.logged.get(name, -1)}
        if fresh:
            tracking.log_step_metrics(self.tracking_uri, self.run_id, fresh, step)


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs, picklable: model config, settings, examples, metric sink."""

    model_config: Mapping[str, Any]
    settings: TrainSettings
    load_examples: Callable[[], pa.Table]
    metrics: Callable[[Mapping[str, float], int], None] | None = None

    def run(self, env: "WorkerEnv") -> dict[str, Any]:
        """Train on one worker (see ``run_worker``); every way of running a job calls this."""
        return run_worker(self, env)


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


# --------------------------------------------------------------------------------------------
# the step


def summed_target_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                       positions: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy summed over the batch's target tokens (labels are aligned with inputs),
    the output head run on target positions only, in chunks (``logprobs``)."""
    return -target_logprobs(model, batch, positions).sum()


def count_target_tokens(batch: Mapping[str, torch.Tensor]) -> int:
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    if precision.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.autocast)


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


# --------------------------------------------------------------------------------------------
# batches


class BatchMaker:
    """Rows of the example table to collated batches, optionally prepared ahead on threads.

    Image decoding and tokenisation run on ``threads`` background threads (the processor and
    tokenizer release the GIL for most of their work), ``lookahead`` batches ahead of the step.
    """

    def __init__(self, table: pa.Table, encoder: ExampleEncoder, pad_token_id: int,
                 threads: int, pin_memory: bool = False) -> None:
        self.table = table.select(list(EXAMPLE_COLUMNS))
        self.encoder = encoder
        self.pad_token_id = pad_token_id
        self.pin_memory = pin_memory  # page-locked, so the copy to the GPU overlaps compute
        self.pool = ThreadPoolExecutor(threads) if threads > 0 else None

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = self.table.take(pa.array(indices, type=pa.int64())).to_pylist()
        batch = collate([self.encoder.encode(row) for row in rows], self.pad_token_id)
        return {k: v.pin_memory() for k, v in batch.items()} if self.pin_memory else batch

    def stream(self, plan: Iterator[Sequence[int]], lookahead: int = 4) -> Iterator[dict[str, torch.Tensor]]:
        if self.pool is None:
            yield from (self.batch(indices) for indices in plan)
            return
        pending: deque = deque()
        for indices in plan:
            pending.append(self.pool.submit(self.batch, indices))
            if len(pending) > lookahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


# --------------------------------------------------------------------------------------------
# checkpoints


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


# --------------------------------------------------------------------------------------------
# the worker


@dataclass
class WorkerModel:
    """The model a worker trains, prepared: LoRA on, wrapped for data parallelism, in train mode."""

    spec: ModelSpec
    precision: Precision
    processor: Any
    model: torch.nn.Module  # DDP-wrapped where there are several workers (``unwrap`` for peft's)
    counts: dict[str, int]  # trainable and total parameters

    @property
    def pad_token_id(self) -> int:
        return padding_token_id(self.processor.tokenizer)


def prepare_worker_model(model_config: Mapping[str, Any], settings: TrainSettings, env: WorkerEnv,
                         init_adapter: str | Path | None = None, *,
                         reference_adapter: str | Path | None = None) -> WorkerModel:
    """Load the base model, add the adapters (with ``init_adapter``'s weights, if given), wrap.

    ``reference_adapter``: an adapter loaded beside the trained one, frozen (GRPO's KL reference).
    """
    spec = ModelSpec.from_backend_config(model_config)
    precision = Precision.resolve(settings.precision, env.device)
    processor = load_processor_for(spec)
    model = add_lora(load_base_model(spec, precision.weights), settings.lora,
                     gradient_checkpointing=settings.gradient_checkpointing)
    if init_adapter is not None:
        load_initial_adapter(model, Path(init_adapter), settings.lora)
    if reference_adapter is not None:
        load_reference_adapter(model, reference_adapter)
    census = adapter_census(model, settings.lora)
    if env.rank == 0:
        log_adapter_census(census)
    counts = {"trainable_parameters": census.trainable, "total_parameters": census.total}
    model = env.prepare_model(model, find_unused_parameters=settings.lora.vision_tower != "frozen")
    model.train()
    return WorkerModel(spec, precision, processor, model, counts)


def adamw(model: torch.nn.Module, settings: TrainSettings, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, fused on CUDA."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr,
                             weight_decay=settings.weight_decay, fused=device.type == "cuda")


def resume(env: WorkerEnv, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: Any, total: int) -> Progress:
    """The progress of the latest checkpoint, its state loaded; a fresh ``Progress`` without one."""
    with env.latest_checkpoint() as folder:
        if folder is None:
            return Progress()
        progress = read_checkpoint(folder, model, optimizer, scheduler)
    log.info("rank %d resumed from step %d of %d", env.rank, progress.step, total)
    return progress


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


def run_worker(job: TrainJob, env: WorkerEnv) -> dict[str, Any]:
    """Train (or resume training) to the last step; returns the run's summary metrics."""
    from transformers import get_cosine_schedule_with_warmup

    settings = job.settings
    torch.manual_seed(settings.seed)
    prepared = prepare_worker_model(job.model_config, settings, env)
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


class WindowClock:
    """Wall time of a log window, leaving out what runs inside ``paused()`` (validation,
    checkpoints), so rates measure training."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def lap(self) -> float:
        """Seconds since the window started (pauses excluded); starts the next window."""
        now = time.perf_counter()
        seconds, self.started = now - self.started, now
        return seconds

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.started += time.perf_counter() - started


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
