"""A stand-in backend for measuring the pipeline: every call costs the same time, whatever it
holds, as a memory-bound GPU decode does (``bench/pipeline.py``, the pipeline tests)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.baselines import OracleBackend
from crossmath.models.call_log import append_call
from crossmath.models.contract import BackendContract, always_greedy


class FlatCostBackend(OracleBackend):
    """A stand-in for a memory-bound GPU decode: a call costs ``call_s`` whether it holds one
    sequence or ``batch_size`` (more are answered in several rounds, as the hf backend splits
    them), and answers like the oracle; each request is one sequence.
    With ``call_log`` set, each call appends one JSON line: process id, start and end (epoch
    seconds), requests and sequences; Ray actors in other processes can all append to it.
    """

    contract = BackendContract(call_sequences="batch_size", non_shaping=frozenset({"batch_size"}),
                               greedy=always_greedy)

    def __init__(self, name: str = "flat-cost", batch_size: int = 64, call_s: float = 1.0,
                 call_log: str | None = None) -> None:
        super().__init__(name)
        self.batch_size, self.call_s = batch_size, call_s
        self.call_log = Path(call_log) if call_log else None

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        started = time.time()
        sequences = len(requests)
        responses = super().generate(requests)  # the oracle's time is inside the call's cost
        time.sleep(max(0.0, started + self.call_s * math.ceil(sequences / self.batch_size)
                       - time.time()))
        if self.call_log is not None:
            append_call(self.call_log, started, requests=len(requests), sequences=sequences)
        return responses
