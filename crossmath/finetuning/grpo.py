"""GRPO, the study's second training stage: one worker's view, on the shared loop's pieces.

Each step, every worker takes its share of the step's puzzles (the same seeded schedule as SFT,
so a resumed run continues with the puzzles it would have seen) and:

1. **rollouts**: samples ``rollouts`` completions of each puzzle's prompt from the current
   policy (the peft model with its adapter on, in eval mode) with the evaluation's decode loop:
   batched, each prompt prefilled once for all its completions, keyed per
   (step, example, sample) (``rollouts.py``);
2. **rewards**: scores each completion (``rewards.py``: the step-weighted share of correct
   blanks); a truncated completion (no stop token within ``max_completion_tokens``) scores 0
   (``truncated: zero``, the default), is left out of its group and of the loss
   (``truncated: exclude``), or is scored like any other (``truncated: keep``: for rewards
   that need no finished answer);
3. **advantages**: normalises the rewards within each puzzle's group (``objective.py``);
4. **update**: ``ppo_epochs`` optimizer steps on the clipped objective over the completion
   tokens, averaged over all completion tokens of the step on all workers. The old policy's
   log-probabilities are the first epoch's own (taken before any update of the step), so with
   one epoch the ratio is 1 and the clip is inactive; from the second epoch on it bites.
   Dropout is off in the update as in the rollouts, and each prompt's image goes through the
   vision tower once for all its completions (``policy_passes.py``); log-probabilities come
   from the output head in chunks of positions (``logprobs.py``). With ``kl_beta > 0`` a
   reference pass gives the KL term (``kl_ref``: the base model, or the frozen starting
   adapter); at ``kl_beta = 0`` (the study reports no KL) there is no reference pass at all.

Groups never straddle workers (a worker samples all completions of its puzzles), so advantages
need no communication; the token count of the loss and the metrics are summed across workers.
Checkpoints, resume, metric reporting, the model and the optimizer are shared with SFT
(``checkpoints``, ``training_state``, ``reporting``, ``worker_model``, ``optimization``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pyarrow as pa
import torch

from crossmath.finetuning.checkpoints import resume
from crossmath.finetuning.collate import EncodedExample, ExampleEncoder, collate, with_reply
from crossmath.finetuning.grpo_settings import GrpoSettings
from crossmath.finetuning.logprobs import target_logprobs, target_positions
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.modeling import Precision, unwrap
from crossmath.finetuning.objective import group_advantages, grpo_token_loss
from crossmath.finetuning.optimization import adamw, autocast, gradient_sync, optimizer_step
from crossmath.finetuning.policy_passes import (
    PromptVision,
    accepts_vision_outputs,
    reference_policy,
    train_without_dropout,
    without_pixels,
)
from crossmath.finetuning.reporting import WindowClock
from crossmath.finetuning.rewards import Reward
from crossmath.finetuning.rollouts import Rollout, RolloutGenerator
from crossmath.finetuning.schedule import Schedule
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.finetuning.training_state import TrainingState
from crossmath.finetuning.worker_model import prepare_worker_model
from crossmath.finetuning.worker_protocol import WorkerEnv
from crossmath.metrics.answers import extract_answer

ROW_COLUMNS = ("example_id", "modality", "grid", "image", "n_blanks", "value_range", "answer", "steps")


@dataclass(frozen=True)
class GrpoJob:
    """Everything a GRPO worker needs, picklable: the model as the driver resolved it (its
    prompt set read), settings, examples. ``reward`` replaces ``grpo.reward`` (tests)."""

    spec: ModelSpec
    settings: TrainSettings
    grpo: GrpoSettings
    load_examples: Callable[[], pa.Table]
    metrics: Callable[[Mapping[str, float], int], None] | None = None
    init_adapter: str | None = None
    reward: Reward | None = None

    def run(self, env: WorkerEnv) -> dict[str, Any]:
        return run_grpo(self, env)


# --------------------------------------------------------------------------------------------
# rewards and advantages of one step's rollouts


@dataclass(frozen=True)
class ScoredRollouts:
    """A worker's rollouts of one step, as (puzzles, completions) grids."""

    rewards: torch.Tensor
    included: torch.Tensor  # bool: in the loss and in the group statistics
    advantages: torch.Tensor
    zero_variance: torch.Tensor  # bool per group
    answered: int  # completions with an <answer> block
    truncated: int


def score_rollouts(rollouts: Sequence[Rollout], rows: Sequence[Mapping[str, Any]], reward: Reward,
                   samples: int, truncated_rule: str, max_tokens: int | None = None) -> ScoredRollouts:
    """Rewards and advantages; ``rollouts`` come prompt by prompt, ``samples`` each, in order.
    ``max_tokens`` (the completion cap) lets a reward with an overlong term charge it."""
    order = [(r.prompt_index, r.sample) for r in rollouts]
    if order != [(i, s) for i in range(len(rows)) for s in range(samples)]:
        raise ValueError("rollouts must come prompt by prompt, samples in order")
    rewards = [0.0 if r.truncated and truncated_rule == "zero" else reward(rows[r.prompt_index], r.text)
               for r in rollouts]
    overlong = getattr(reward, "overlong_penalty", None)
    if overlong is not None and max_tokens is not None:
        rewards = [value - overlong(len(r.token_ids), max_tokens, r.truncated)
                   for value, r in zip(rewards, rollouts)]
    included = [not (r.truncated and truncated_rule == "exclude") for r in rollouts]
    grid = torch.tensor(rewards, dtype=torch.float64).view(len(rows), samples)
    kept = torch.tensor(included).view(len(rows), samples)
    groups = group_advantages(grid, kept)
    return ScoredRollouts(grid, kept, groups.advantages, groups.zero_variance,
                          answered=sum(extract_answer(r.text) is not None for r in rollouts),
                          truncated=sum(r.truncated for r in rollouts))


# --------------------------------------------------------------------------------------------
# the policy update


@dataclass(frozen=True)
class UpdateTotals:
    """Sums over the update's loss tokens (all epochs) on this worker; reduced when logged."""

    loss: float  # per-token losses, summed
    kl: float  # per-token KL estimates, summed
    clipped: float  # tokens where the clip acted
    tokens: float  # loss tokens, once per epoch
    grad_norm: float  # summed over the optimizer steps
    updates: int  # optimizer steps


@dataclass(frozen=True)
class UpdateBatch:
    """A micro-batch of the update: completions after their prompts, right-padded."""

    inputs: dict[str, torch.Tensor]  # on the device, labels included
    positions: torch.Tensor  # flat positions predicting a completion token, on the device
    advantages: torch.Tensor  # per such position
    weights: torch.Tensor  # per such position: 1 in the loss, 0 left out
    loss_tokens: int  # positions of weight 1 (counted on the host: no device sync)
    prompt_indices: tuple[int, ...] = ()  # each sequence's prompt (for its vision outputs)


def update_batches(sequences: Sequence[EncodedExample], advantages: torch.Tensor,
                   included: torch.Tensor, size: int, pad_token_id: int,
                   device: torch.device, prompt_indices: Sequence[int] = ()) -> list[UpdateBatch]:
    """``sequences`` (prompt + completion, from ``with_reply``) in micro-batches of ``size``,
    each token carrying its completion's advantage and weight (``included``: 1, else 0);
    ``prompt_indices``, where given, name each sequence's prompt."""
    batches = []
    for start in range(0, len(sequences), size):
        host = collate(sequences[start:start + size], pad_token_id)
        positions = target_positions(host["labels"])
        rows = torch.div(positions, host["labels"].shape[1], rounding_mode="floor") + start
        weights = included[rows].float()
        batches.append(UpdateBatch(
            {k: v.to(device, non_blocking=True) for k, v in host.items()},
            positions.to(device), advantages[rows].float().to(device), weights.to(device),
            int(weights.sum()), tuple(prompt_indices[start:start + size])))
    return batches


def batch_logprobs(model: torch.nn.Module, batch: UpdateBatch, grpo: GrpoSettings,
                   vision: PromptVision | None) -> torch.Tensor:
    """log pi of the batch's completion tokens at the sampling temperature; the images' vision
    outputs from ``vision`` where given (the tower then does not run)."""
    inputs, extra = batch.inputs, {}
    if vision is not None and batch.prompt_indices:
        extra = vision.inputs_for(batch.prompt_indices)
        if extra:
            inputs = without_pixels(inputs)
    return target_logprobs(model, inputs, batch.positions, temperature=grpo.temperature,
                           chunk=grpo.logprob_chunk, **extra)


def policy_update(model: torch.nn.Module, batches: Sequence[UpdateBatch],
                  optimizer: torch.optim.Optimizer, scheduler: Any, env: WorkerEnv,
                  precision: Precision, grpo: GrpoSettings, max_grad_norm: float,
                  vision: PromptVision | None = None) -> UpdateTotals:
    """``grpo.ppo_epochs`` optimizer steps on the clipped objective over ``batches``.

    The loss is the token-level mean over every weighted completion token of all workers
    (DDP averages gradients over workers; scaling by ``world_size / tokens`` makes that mean).
    The reference pass runs only when the KL enters the loss (``kl_beta > 0``).
    """
    local_tokens = float(sum(b.loss_tokens for b in batches))
    total = env.all_reduce_sum(torch.tensor([local_tokens], device=env.device))
    scale = env.world_size / total.clamp(min=1.0)
    policy = unwrap(model)
    reference: list[torch.Tensor | None] = [None] * len(batches)
    if grpo.kl_beta > 0:
        with torch.no_grad(), reference_policy(policy), autocast(env.device, precision):
            reference = [batch_logprobs(policy, batch, grpo, vision) for batch in batches]
    old: list[torch.Tensor] = []
    sums = torch.zeros(4, device=env.device)  # loss, kl, clipped tokens, grad norms: kept on the device
    for epoch in range(grpo.ppo_epochs):
        for index, batch in enumerate(batches):
            with gradient_sync(model, index == len(batches) - 1):
                with autocast(env.device, precision):
                    logp = batch_logprobs(model, batch, grpo, vision)
                if epoch == 0:
                    old.append(logp.detach())
                terms = grpo_token_loss(logp, old[index], batch.advantages, clip_low=grpo.clip_low,
                                        clip_high=grpo.clip_high, ref_logp=reference[index],
                                        kl_beta=grpo.kl_beta)
                summed = (terms.loss * batch.weights).sum()
                (summed * scale).backward()
            sums[0] += summed.detach()
            sums[1] += (terms.kl * batch.weights).sum()
            sums[2] += (terms.clipped.float() * batch.weights).sum()
        sums[3] += optimizer_step(model, optimizer, scheduler, max_grad_norm)
    loss, kl, clipped, grad_norm = sums.tolist()
    return UpdateTotals(loss, kl, clipped, local_tokens * grpo.ppo_epochs, grad_norm, grpo.ppo_epochs)


# --------------------------------------------------------------------------------------------
# metrics


METRIC_SUMS = ("completions", "reward", "reward_squares", "groups", "zero_variance", "answered",
               "completion_tokens", "truncated", "loss", "kl", "clipped", "loss_tokens",
               "rollout_seconds", "steps")


class _Window(WindowClock):
    """Sums over the steps since the last log line; reduced across workers when flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.sums = dict.fromkeys(METRIC_SUMS, 0.0)
        self.grad_norm = 0.0
        self.updates = 0
        self.total_tokens = 0.0
        self.total_rollout_seconds = 0.0

    def add(self, scored: ScoredRollouts, rollouts: Sequence[Rollout], update: UpdateTotals,
            rollout_seconds: float) -> None:
        values = {
            "completions": scored.rewards.numel(), "reward": float(scored.rewards.sum()),
            "reward_squares": float((scored.rewards ** 2).sum()),
            "groups": scored.rewards.shape[0], "zero_variance": float(scored.zero_variance.sum()),
            "answered": scored.answered, "truncated": scored.truncated,
            "completion_tokens": sum(len(r.token_ids) for r in rollouts),
            "loss": update.loss, "kl": update.kl, "clipped": update.clipped,
            "loss_tokens": update.tokens, "rollout_seconds": rollout_seconds, "steps": 1,
        }
        for key, value in values.items():
            self.sums[key] += float(value)
        self.grad_norm += update.grad_norm
        self.updates += update.updates

    def flush(self, env: WorkerEnv) -> dict[str, float]:
        vector = torch.tensor([self.sums[k] for k in METRIC_SUMS], dtype=torch.float64, device=env.device)
        s = dict(zip(METRIC_SUMS, env.all_reduce_sum(vector).tolist()))
        seconds = self.lap()
        n = max(s["completions"], 1.0)
        mean = s["reward"] / n
        variance = (s["reward_squares"] - n * mean**2) / (n - 1) if n > 1 else 0.0
        rollout_seconds = s["rollout_seconds"] / env.world_size  # workers generate side by side
        tokens = max(s["loss_tokens"], 1.0)
        metrics = {
            "grpo/reward_mean": mean,
            "grpo/reward_std": math.sqrt(max(variance, 0.0)),
            "grpo/zero_variance_groups": s["zero_variance"] / max(s["groups"], 1.0),
            "grpo/answer_tag_rate": s["answered"] / n,
            "grpo/completion_tokens": s["completion_tokens"] / n,
            "grpo/truncated_rate": s["truncated"] / n,
            "grpo/loss": s["loss"] / tokens,
            "grpo/kl": s["kl"] / tokens,
            "grpo/clip_fraction": s["clipped"] / tokens,
            "train/grad_norm": self.grad_norm / max(self.updates, 1),
            "train/step_time_s": seconds / max(self.sums["steps"], 1.0),
            "rollout/tokens_per_s": s["completion_tokens"] / rollout_seconds if rollout_seconds else 0.0,
            "rollout/time_s": rollout_seconds / max(self.sums["steps"], 1.0),
            "tokens": s["completion_tokens"],
        }
        self.total_tokens += s["completion_tokens"]
        self.total_rollout_seconds += rollout_seconds
        self.sums = dict.fromkeys(METRIC_SUMS, 0.0)
        self.grad_norm, self.updates = 0.0, 0
        return metrics

    @property
    def mean_rollout_tokens_per_s(self) -> float:
        if not self.total_rollout_seconds:
            return float("nan")
        return self.total_tokens / self.total_rollout_seconds


# --------------------------------------------------------------------------------------------
# the worker


def grpo_schedule(n_examples: int, world_size: int, grpo: GrpoSettings, seed: int) -> Schedule:
    """SFT's schedule with one micro-batch of prompts per worker, over as many epochs as the
    steps need (each epoch a fresh permutation of the examples)."""
    once = Schedule(n_examples, world_size, grpo.prompts_per_worker(world_size), 1, 1, None, seed)
    return dataclasses.replace(once, epochs=math.ceil(grpo.steps / once.steps_per_epoch),
                               max_steps=grpo.steps)


def run_grpo(job: GrpoJob, env: WorkerEnv) -> dict[str, Any]:
    """GRPO (or its resumption) to the last step; returns the run's summary metrics."""
    from transformers import get_constant_schedule_with_warmup

    settings, grpo = job.settings, job.grpo
    torch.manual_seed(settings.seed)
    reference = job.init_adapter if grpo.kl_beta > 0 and grpo.kl_ref == "init" else None
    prepared = prepare_worker_model(job.spec, settings, env, job.init_adapter,
                                    reference_adapter=reference)
    model, policy = prepared.model, unwrap(prepared.model)
    share_vision = settings.lora.vision_tower == "frozen" and accepts_vision_outputs(policy)
    table = job.load_examples().sort_by("example_id").select(list(ROW_COLUMNS))
    schedule = grpo_schedule(table.num_rows, env.world_size, grpo, settings.seed)
    total = schedule.total_steps
    optimizer = adamw(model, settings, env.device)
    scheduler = get_constant_schedule_with_warmup(
        optimizer, math.ceil(settings.warmup_ratio * total * grpo.ppo_epochs))
    progress = resume(env, model, optimizer, scheduler, total)
    summary: dict[str, Any] = {
        **prepared.counts, "method": "grpo", "total_steps": total,
        "train_examples": table.num_rows, "init_adapter": job.init_adapter,
        "resumed_from_step": progress.resumed_from_step,
    }
    if progress.step >= total:  # a finished run started again: its final checkpoint stands
        return summary

    encoder = ExampleEncoder(prepared.processor, prepared.spec)
    generator = RolloutGenerator(encoder.tokenizer, samples=grpo.rollouts,
                                 max_new_tokens=grpo.max_completion_tokens,
                                 batch_size=grpo.rollout_batch_size, sampling=grpo.sampling,
                                 seed=settings.seed)
    reward = job.reward or grpo.reward
    state = TrainingState(env, model, optimizer, scheduler, progress, job.metrics)
    window = _Window()
    last: dict[str, float] = {}

    while progress.step < total:
        rows = table.take(pa.array(schedule.micro_batches(progress.step, env.rank)[0],
                                   type=pa.int64())).to_pylist()
        prompts = [encoder.encode_prompt_example(row) for row in rows]
        policy.eval()
        started = time.perf_counter()
        with autocast(env.device, prepared.precision):
            rollouts = generator.generate(policy, prompts, progress.step, env.device)
        rollout_seconds = time.perf_counter() - started
        train_without_dropout(model)
        scored = score_rollouts(rollouts, rows, reward, grpo.rollouts, grpo.truncated,
                                grpo.max_completion_tokens)
        sequences = [with_reply(prompts[r.prompt_index], r.token_ids) for r in rollouts]
        batches = update_batches(sequences, scored.advantages.flatten(), scored.included.flatten(),
                                 grpo.micro_batch_size, prepared.pad_token_id, env.device,
                                 [r.prompt_index for r in rollouts])
        with autocast(env.device, prepared.precision):
            vision = PromptVision(policy, prompts, env.device) if share_vision else None
        update = policy_update(model, batches, optimizer, scheduler, env, prepared.precision, grpo,
                               settings.max_grad_norm, vision)
        progress.step += 1
        window.add(scored, rollouts, update, rollout_seconds)
        at_end = progress.step == total
        if progress.step % settings.log_every == 0 or at_end:
            last = window.flush(env)
            if not grpo.kl_beta:  # no reference pass, so no KL to report
                last.pop("grpo/kl")
            state.log_window(last)
        if not at_end and settings.checkpoint_every and progress.step % settings.checkpoint_every == 0:
            with window.paused():
                state.checkpoint({"grpo/reward_mean": last.get("grpo/reward_mean", float("nan"))})
    summary.update(final_step=progress.step, tokens_seen=progress.tokens_seen,
                   final_reward_mean=last.get("grpo/reward_mean"),
                   rollout_tokens_per_s=window.mean_rollout_tokens_per_s)
    state.checkpoint(summary)
    return summary

