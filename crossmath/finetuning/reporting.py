"""How a worker's loop reports metrics: the MLflow run rank 0 sends them to, and the clock that
times each log window (validation and checkpoints left out)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator, Mapping


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
