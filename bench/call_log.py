"""How busy a backend was, from its call log (``crossmath.models.call_log``: one JSON line per
call with the process id, start and end). Shared by ``pipeline.py`` and ``mainjob_gpu.py``."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Busy:
    calls: int
    median_requests: float
    span_s: float  # the first call's start to the last call's end
    max_gap_s: float  # the longest wait of one process between two of its calls
    mean_gap_s: float
    processes: int


def busy(calls: list[dict]) -> Busy:
    """Figures of a non-empty call log."""
    gaps = []
    for pid in {call["pid"] for call in calls}:
        mine = sorted((c for c in calls if c["pid"] == pid), key=lambda c: c["started"])
        gaps += [after["started"] - before["ended"] for before, after in zip(mine, mine[1:])]
    return Busy(
        calls=len(calls),
        median_requests=statistics.median(call["requests"] for call in calls),
        span_s=max(c["ended"] for c in calls) - min(c["started"] for c in calls),
        max_gap_s=max(gaps, default=0.0),
        mean_gap_s=statistics.fmean(gaps) if gaps else 0.0,
        processes=len({call["pid"] for call in calls}),
    )
