"""Requests that failed: counted per modality and style, so a run can say it is incomplete.

A failed request (its prediction's ``error`` is set: the server was down, the image would not
decode, one prompt ran out of memory; a backend says so in its response) is scored as no answer, which is wrong. Left unsaid, that
would pass as the model's failure: a corrupted image widens the modality gap. So the run
reports the failures beside the scores (``metrics.json``, the console, MLflow), tags its MLflow
run incomplete and exits with ``EXIT_INCOMPLETE``; a rerun of the same command retries them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from crossmath.models.base import is_refusal

EXIT_INCOMPLETE = 3  # the exit status of a run that finished with failed requests
TOP_ERRORS = 3


@dataclass(frozen=True)
class FailureGroup:
    modality: str
    style: str
    failed: int
    requests: int


@dataclass(frozen=True)
class FailureReport:
    """The failed requests of one evaluation, after its latest attempts."""

    groups: tuple[FailureGroup, ...]
    exhausted: int  # failed requests that used up their attempts: a rerun will not retry them
    errors: tuple[tuple[str, int], ...]  # the most frequent error messages, with their counts
    refused: int = 0  # failed requests the server refused as wrong (a 4xx): not transient

    @property
    def n_failed(self) -> int:
        return sum(group.failed for group in self.groups)

    @property
    def n_requests(self) -> int:
        return sum(group.requests for group in self.groups)

    @property
    def complete(self) -> bool:
        return self.n_failed == 0

    def flat_metrics(self) -> dict[str, float]:
        """``<modality>/<style>/n_failed`` per group and ``n_failed`` overall, for MLflow."""
        metrics = {f"{g.modality}/{g.style}/n_failed": float(g.failed) for g in self.groups}
        metrics["n_failed"] = float(self.n_failed)
        return metrics

    def to_dict(self) -> dict[str, Any]:
        return {"n_requests": self.n_requests, "n_failed": self.n_failed,
                "n_exhausted": self.exhausted, "n_refused": self.refused,
                "groups": [vars(group) for group in self.groups],
                "errors": [{"message": message, "count": count} for message, count in self.errors]}

    def summary_lines(self) -> list[str]:
        """What the console says after the scores; nothing when every request was answered."""
        if self.complete:
            return []
        where = ", ".join(f"{g.modality}/{g.style}: {g.failed}" for g in self.groups if g.failed)
        lines = [f"INCOMPLETE: {self.n_failed} of {self.n_requests} requests failed ({where}); "
                 "they count as wrong answers above"]
        lines += [f"  {count} x {message}" for message, count in self.errors]
        if self.refused:
            lines.append(f"{self.refused} were refused by the server (HTTP 4xx, see why above): "
                         "that is not transient, so they were not retried, and a rerun is "
                         "refused the same way until the request or the server changes")
        retried = self.n_failed - self.exhausted - self.refused
        if retried > 0:
            lines.append(f"rerun the same command to retry the {retried} that have attempts left")
        if self.exhausted:
            lines.append(f"{self.exhausted} used up max_attempts; raise max_attempts to retry them")
        return lines


def count_failures(predictions: pa.Table, max_attempts: int) -> FailureReport:
    """The failures among ``predictions`` (one row per request: its latest attempt)."""
    rows = predictions.select(["modality", "style", "error", "attempt"]).to_pylist()
    totals: Counter[tuple[str, str]] = Counter()
    failed: Counter[tuple[str, str]] = Counter()
    messages: Counter[str] = Counter()
    exhausted = refused = 0
    for row in rows:
        key = (row["modality"], row["style"])
        totals[key] += 1
        if row["error"] is not None:
            failed[key] += 1
            messages[_first_line(row["error"])] += 1
            if row["attempt"] >= max_attempts:
                exhausted += 1
            elif is_refusal(row["error"]):
                refused += 1
    groups = tuple(FailureGroup(m, s, failed[(m, s)], totals[(m, s)]) for m, s in sorted(totals))
    return FailureReport(groups, exhausted, tuple(messages.most_common(TOP_ERRORS)), refused)


def _first_line(message: str, limit: int = 200) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "(empty error)"
    return line if len(line) <= limit else line[:limit - 3] + "..."
