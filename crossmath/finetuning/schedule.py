"""Which examples each worker trains on at each optimizer step.

Data order is a function of (seed, epoch) alone: each optimizer step takes the next
``world_size x batch_size x grad_accumulation`` examples of the epoch's permutation, worker r
every r-th of them. A resumed run therefore continues with exactly the batch it would have
seen, from the step stored in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
