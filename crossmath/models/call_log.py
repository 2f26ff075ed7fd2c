"""A backend's call log: one JSON line per ``generate`` call (process id, start and end in epoch
seconds, and figures such as requests and sequences), appended from any process (Ray actors
included) and read back in order of start. Benchmarks measure how busy a backend was from it
(``bench/call_log.py``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


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
