"""Whether a RUNNING run is still being worked on: a heartbeat while it is, and the marking of
runs whose command is gone.

While an evaluation or a training runs, a daemon thread of its command refreshes the run's tag
``heartbeat`` (epoch milliseconds) every ``HEARTBEAT_S`` seconds. A command that ends
normally, by an error or by a signal it can catch closes its run itself (FINISHED, FAILED,
KILLED); one that cannot (SIGKILL, a lost machine, a power cut) leaves it RUNNING with an old
heartbeat. ``mark_stale_runs`` (run by ``python -m crossmath.report``) finds those: RUNNING,
and no heartbeat for ``stale_after_s`` (a run without the tag, from an older version, is
judged by its start time). It marks each KILLED, ended at its last heartbeat, with the tags
``incomplete=true`` and ``end_cause`` saying so. Rerunning the command resumes the same run.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from mlflow.tracking import MlflowClient

from crossmath.tracking.mlflow_store import END_CAUSE_TAG, INCOMPLETE_TAG

HEARTBEAT_TAG = "heartbeat"
HEARTBEAT_S = 60.0
STALE_STATUS = "KILLED"

log = logging.getLogger(__name__)


def beat(tracking_uri: str, run_id: str) -> None:
    MlflowClient(tracking_uri).set_tag(run_id, HEARTBEAT_TAG, str(int(time.time() * 1000)))


class Heartbeat:
    """Beats once on ``start``, then every ``every_s`` seconds on a daemon thread until
    ``stop`` (or the ``with`` block's end). A beat that fails (the tracking server away for a
    while) is logged and the next one tried: a heartbeat never stops the work."""

    def __init__(self, tracking_uri: str, run_id: str, every_s: float = HEARTBEAT_S) -> None:
        self.tracking_uri, self.run_id, self.every_s = tracking_uri, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_beating, daemon=True,
                                        name=f"mlflow-heartbeat-{run_id[:8]}")

    def start(self) -> "Heartbeat":
        beat(self.tracking_uri, self.run_id)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> "Heartbeat":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _keep_beating(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                beat(self.tracking_uri, self.run_id)
            except Exception as error:  # a tracking hiccup must not end the work
                log.warning("MLflow run %s: heartbeat not recorded (%s)", self.run_id, error)


@dataclass(frozen=True)
class StaleRun:
    run_id: str
    run_name: str
    last_sign_ms: int  # the last heartbeat, or the start of a run that has none


def last_sign_of_life(run) -> int:
    """Epoch ms of the run's last heartbeat, or of its start when it never beat."""
    beat_ms = run.data.tags.get(HEARTBEAT_TAG)
    return int(beat_ms) if beat_ms and beat_ms.isdigit() else int(run.info.start_time)


def stale_runs(tracking_uri: str, experiment: str, stale_after_s: float,
               now_ms: int | None = None) -> list[StaleRun]:
    """The RUNNING runs of the experiment named ``experiment`` with no sign of life for
    ``stale_after_s`` seconds (none when there is no such experiment)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    client = MlflowClient(tracking_uri)
    found_experiment = client.get_experiment_by_name(experiment)
    if found_experiment is None:
        return []
    running = client.search_runs([found_experiment.experiment_id],
                                 filter_string="attributes.status = 'RUNNING'",
                                 max_results=10_000)
    found = []
    for run in running:
        last = last_sign_of_life(run)
        if now_ms - last > stale_after_s * 1000:
            found.append(StaleRun(run.info.run_id, run.info.run_name or run.info.run_id, last))
    return found


def mark_stale_runs(tracking_uri: str, experiment: str, stale_after_s: float,
                    marked_by: str = "crossmath.report") -> list[StaleRun]:
    """Mark each stale run (``stale_runs``) KILLED, ended at its last sign of life, with
    ``end_cause`` and ``incomplete=true``; returns them."""
    client = MlflowClient(tracking_uri)
    stale = stale_runs(tracking_uri, experiment, stale_after_s)
    for run in stale:
        when = datetime.fromtimestamp(run.last_sign_ms / 1000, timezone.utc)
        client.set_tag(run.run_id, END_CAUSE_TAG,
                       f"no heartbeat since {when:%Y-%m-%d %H:%M:%S} UTC: its command stopped "
                       f"without closing the run (killed, or its machine lost); marked by "
                       f"{marked_by}")
        client.set_tag(run.run_id, INCOMPLETE_TAG, "true")
        client.set_terminated(run.run_id, status=STALE_STATUS, end_time=run.last_sign_ms)
    return stale

