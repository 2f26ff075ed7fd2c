"""Backends that misbehave on purpose, to exercise the pipeline's resume and retry paths.

``SlowBackend`` answers like the oracle after a delay per request, so a run can be stopped
halfway. ``CrashingBackend`` kills its own worker process on its first batch (once per marker
file), as an out-of-memory kill or a lost node would, so Ray's actor restart is tested for real.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.baselines import OracleBackend


class SlowBackend(OracleBackend):
    def __init__(self, name: str = "slow-oracle", delay_s: float = 0.05) -> None:
        super().__init__(name)
        self.delay_s = delay_s

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        time.sleep(self.delay_s * len(requests))
        return super().generate(requests)


class CrashingBackend(OracleBackend):
    def __init__(self, marker: str, name: str = "crashing-oracle") -> None:
        super().__init__(name)
        self.marker = Path(marker)

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # the process dies mid-batch, without cleanup
        return super().generate(requests)
