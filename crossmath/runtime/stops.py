"""Clean stops: SIGINT (Ctrl-C) and SIGTERM end a command within seconds, keeping what is saved.

The first signal raises ``Stopped`` in the main thread. It is a ``KeyboardInterrupt``, so it
passes every ``except Exception`` on its way out and every library that cleans up after a
Ctrl-C (Ray Data shuts its executor down) does so: work in flight is abandoned, what is on disk
stays (rerunning the same command resumes from it), the command's MLflow run is marked KILLED
(``crossmath.tracking.run_end``) and a Ray this process started is shut down as the process
exits. The command then ends with one line and status 128 + the signal's number (130 for
SIGINT, 143 for SIGTERM), as a shell reports a process killed by it.

A second signal does not wait for that cleanup: the process exits at once, with the same status.
Ray's local processes die with it (Ray starts them bound to this process's life).

``ray.init`` installs its own SIGTERM handler (a bare ``sys.exit``); ``keeping_handlers`` puts
ours back after it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Iterator, NoReturn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The command was asked to stop by ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {self.signal_name}"


def stop_of(error: BaseException) -> Stopped | None:
    """The ``Stopped`` that ``error`` is or stands for (a plain Ctrl-C counts as SIGINT)."""
    if isinstance(error, Stopped):
        return error
    if isinstance(error, KeyboardInterrupt):
        return Stopped(signal.SIGINT)
    return None


class _Handler:
    """First signal: raise ``Stopped``; any later one: exit at once."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.received is not None:
            os.write(2, f"{signal.Signals(signum).name} again: exiting now\n".encode())
            os._exit(128 + signum)
        self.received = signum
        raise Stopped(signum)


_active: _Handler | None = None


@contextlib.contextmanager
def stopping_cleanly() -> Iterator[None]:
    """Inside: SIGINT and SIGTERM stop the command as above (main thread only; elsewhere a
    no-op, since Python delivers signals to the main thread)."""
    global _active
    if threading.current_thread() is not threading.main_thread() or _active is not None:
        yield
        return
    _active = _Handler()
    previous = {number: signal.signal(number, _active) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _active = None


@contextlib.contextmanager
def keeping_handlers() -> Iterator[None]:
    """Around code that replaces the stop handlers (``ray.init``): ours are put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in saved.items():
            if handler is not None:
                signal.signal(number, handler)


def exit_stopped(command: str, stop: Stopped, *, resumable: bool = False) -> NoReturn:
    """End a stopped command: its line (a ``resumable`` command's saying that a rerun resumes),
    the Ray this process started shut down, and exit with ``stop``'s status at once, skipping
    the interpreter's slow teardown (Ray's atexit hook would shut Ray down again; the files and
    the MLflow run are closed already)."""
    resume = "; what was saved is kept (rerun the same command to resume)" if resumable else ""
    print(f"{command}: {stop}{resume}", file=sys.stderr)
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(stop.exit_status)
