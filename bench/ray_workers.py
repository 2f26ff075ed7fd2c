"""The Ray worker processes a piece of work starts, and the CPU they use: polled from ``/proc``
(psutil) while it runs. Shared by ``dataset_start.py`` and ``probe_rounds.py``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


def ray_workers() -> dict[int, float]:
    """Ray's worker processes now: pid -> CPU seconds so far."""
    import psutil

    found = {}
    for process in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
        command = " ".join(process.info["cmdline"] or [])
        if "default_worker.py" in command or command.startswith("ray::"):
            found[process.info["pid"]] = sum(process.info["cpu_times"][:2])
    return found


@contextmanager
def workers_started(every_s: float = 0.1) -> Iterator[dict[int, float]]:
    """Yields a dict that fills, while the block runs, with the worker processes started
    since it began (pid -> their last CPU seconds seen, polled every ``every_s``)."""
    before = set(ray_workers())
    started: dict[int, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            started.update({pid: cpu for pid, cpu in ray_workers().items() if pid not in before})
            done.wait(every_s)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield started
    finally:
        done.set()
        watcher.join()
