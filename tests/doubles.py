"""Backends that misbehave on purpose, to exercise the pipeline's resume and retry paths, and
a stand-in GPU to measure how the pipeline feeds one.

``SlowBackend`` answers like the oracle after a delay per request, so a run can be stopped
halfway. ``CrashingBackend`` kills its own worker process on its first batch (once per marker
file), as an out-of-memory kill or a lost node would, so Ray's actor restart is tested for real.
``FlatCostBackend`` costs the same per call whatever the call holds, up to its ``batch_size``,
and logs every call (``bench/pipeline.py`` and the pipeline tests read the log).
"""

from __future__ import annotations

import json
import math
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


class FlatCostBackend(OracleBackend):
    """A stand-in for a memory-bound GPU decode: a call costs ``call_s`` whether it holds one
    sequence or ``batch_size`` (more are answered in several rounds, as the hf backend splits
    them), and answers like the oracle.

    ``do_sample`` false (as in the hf backend) counts a prompt's samples as one sequence, as
    greedy decoding answers them once.
    With ``call_log`` set, each call appends one JSON line: process id, start and end (epoch
    seconds), requests and sequences; Ray actors in other processes can all append to it.
    """

    def __init__(self, name: str = "flat-cost", batch_size: int = 64, call_s: float = 1.0,
                 do_sample: bool = False, call_log: str | None = None) -> None:
        super().__init__(name)
        self.batch_size, self.call_s, self.do_sample = batch_size, call_s, do_sample
        self.call_log = Path(call_log) if call_log else None

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        started = time.time()
        sequences = len(requests) if self.do_sample else len({r.prompt for r in requests})
        responses = super().generate(requests)  # the oracle's time is inside the call's cost
        time.sleep(max(0.0, started + self.call_s * math.ceil(sequences / self.batch_size)
                       - time.time()))
        if self.call_log is not None:
            append_call(self.call_log, started, requests=len(requests), sequences=sequences)
        return responses


def append_call(log: str | Path, started: float, **figures: float) -> None:
    """Append one backend call to a call log: this process's id, the call's start and end
    (epoch seconds, ending now) and ``figures`` (requests, sequences, ...)."""
    record = {"pid": os.getpid(), "started": started, "ended": time.time(), **figures}
    with Path(log).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_call_log(path: str | Path) -> list[dict]:
    """The calls ``append_call`` logged, in order of their start."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return sorted((json.loads(line) for line in lines if line.strip()), key=lambda c: c["started"])
