"""The ``scaling`` section of ``conf/train.yaml``: how many Ray Train workers, with what.

Plain values, without torch or Ray: the door (``crossmath.settings.train``) reads them before
anything heavy loads; ``crossmath.finetuning.ray_trainer.fit`` runs the workers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RayScaling:
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1
    max_failures: int = 0  # worker restarts Ray Train makes from the latest checkpoint
