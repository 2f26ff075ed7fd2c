"""How a command's failure reaches the person who ran it.

Two kinds of failure, reported differently because they ask different things of the reader:

- **A user error**: an option or an input file that cannot work, a ``UserError``
  (``crossmath.core.errors``): the door's ``ConfigError`` (where: the option or file; what:
  the problem), and the library's own input errors, which already name file, line and field
  (a malformed jsonl line, an unknown style, a broken prompt set, a release that cannot be
  found or a log that cannot be scored). One message on stderr, exit status 2, no traceback.
- **Anything else**: a bug or a crash, here or inside a Ray worker. The traceback of the root
  cause is printed once (for a Ray worker, the worker's own traceback, not the wrappers Ray
  adds around it), then, as the very last line, the root cause itself; exit status 1.

A user error raised inside a Ray worker is recognised through Ray's wrappers and reported as a
user error. ``HYDRA_FULL_ERROR=1`` re-raises everything unchanged, as Hydra's own switch does.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
import traceback
from dataclasses import dataclass
from typing import Callable, TextIO, TypeVar

from crossmath.core.errors import ConfigError, UserError

__all__ = ["ConfigError", "UserError", "report_failure", "reports_failures", "find_cause"]

USER_ERROR_STATUS = 2
FAILURE_STATUS = 1

Main = TypeVar("Main", bound=Callable)

# How a remote traceback in a Ray error's text separates the exceptions of a chain.
_CHAIN_SEPARATORS = ("The above exception was the direct cause of the following exception:",
                     "During handling of the above exception, another exception occurred:")
_EXCEPTION_LINE = re.compile(r"(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?")


def reports_failures(command: str) -> Callable[[Main], Main]:
    """Decorate a command's ``main`` (below ``@hydra.main``) to report failures as above.

    ``command`` is how the user ran it (``crossmath.run``); every message starts with it.
    """

    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def guarded(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except Exception as error:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                sys.exit(report_failure(command, error))

        return guarded  # type: ignore[return-value]

    return decorate


def report_failure(command: str, error: BaseException, stream: TextIO | None = None) -> int:
    """Write ``error`` for a person to ``stream`` (stderr); returns the exit status to use."""
    stream = stream or sys.stderr
    cause = find_cause(error)
    if cause.user_error:
        print(f"{command}: {cause.message}", file=stream)
        return USER_ERROR_STATUS
    if cause.traceback:
        print(cause.traceback.rstrip("\n"), file=stream)
    where = " in a Ray worker" if cause.remote else ""
    print(f"{command}: failed{where}: {cause.summary}", file=stream)
    return FAILURE_STATUS


@dataclass(frozen=True)
class Cause:
    """The root cause of a failure, as it should be shown.

    ``summary`` is ``Type: message``; ``traceback`` is where it was raised (empty for user
    errors, whose message says all); ``remote`` tells whether that was in a Ray worker.
    """

    type_name: str
    message: str
    traceback: str
    user_error: bool
    remote: bool

    @property
    def summary(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


def find_cause(error: BaseException) -> Cause:
    """The root cause of ``error``, through ``raise ... from`` and through Ray's wrappers.

    Ray hands a worker's exception back wrapped (``RayTaskError``, whose ``cause`` is the
    worker's exception; Ray Data's ``UserCodeException``; an actor that died in its
    constructor as ``ActorDiedError``; Ray Train's ``WorkerGroupError``). Where the worker's
    exception itself did not survive the trip, its traceback text did, and is read instead.
    """
    chain = _chain(error)
    root = chain[-1]
    ray_errors = [e for e in chain if _is_ray_error(e)]
    remote = bool(ray_errors)
    if not _is_ray_error(root):  # the exception itself is here (from this process or a worker)
        if isinstance(root, UserError):
            return Cause(type(root).__name__, str(root), "", user_error=True, remote=remote)
        where = (_first_traceback(str(ray_errors[-1])) if remote
                 else "".join(traceback.format_exception(error)))
        return Cause(type(root).__name__, str(root), where, user_error=False, remote=remote)
    for wrapper in reversed(ray_errors):  # only Ray's wrappers came back: read their text
        block = _first_traceback(str(wrapper))
        parsed = _exception_of(block)
        if parsed is not None:
            type_name, message = parsed
            user_error = _names_user_error(type_name)
            return Cause(type_name.rsplit(".", 1)[-1], message, "" if user_error else block,
                         user_error=user_error, remote=True)
    return Cause(type(root).__name__, str(root).strip(), "", user_error=False, remote=True)


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it wraps, outermost first."""
    chain = [error]
    while True:
        inner = _wrapped(chain[-1])
        if inner is None or any(inner is seen for seen in chain):
            return chain
        chain.append(inner)


def _wrapped(error: BaseException) -> BaseException | None:
    """The exception ``error`` stands for, if it wraps one."""
    if _is_ray_error(error):
        for attribute in ("cause", "controller_failure"):  # RayTaskError, Ray Train's
            inner = getattr(error, attribute, None)        # ControllerError
            if isinstance(inner, BaseException):
                return inner
        failures = getattr(error, "worker_failures", None)  # Ray Train's WorkerGroupError
        if isinstance(failures, dict) and failures:
            return failures[min(failures)]  # the lowest rank's, as good as any
    inner = error.__cause__
    if inner is not None and type(inner).__name__ == "SystemException" and not str(inner):
        return None  # Ray Data's marker for "raised by Ray's own code", not a cause
    return inner


def _is_ray_error(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] == "ray"


def _names_user_error(type_name: str) -> bool:
    """Whether ``type_name`` (``module.Class``, as a traceback's text writes it) is a
    ``UserError``: one of ours, looked up by its name."""
    module, _, name = type_name.rpartition(".")
    if not module.startswith("crossmath."):
        return False
    try:
        kind = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return False
    return isinstance(kind, type) and issubclass(kind, UserError)


def _first_traceback(text: str) -> str:
    """The first exception of a traceback text: Python prints the root cause of a chain first."""
    cut = min((text.find(s) for s in _CHAIN_SEPARATORS if s in text), default=len(text))
    return text[:cut].strip("\n")


def _exception_of(block: str) -> tuple[str, str] | None:
    """``(type, message)`` of the exception a traceback block ends with, or None if it holds no
    stack frame. Its lines are those after the last frame (a line starting ``File``, then the
    frame's indented source lines)."""
    lines = block.splitlines()
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
    if not frames:
        return None
    rest = lines[frames[-1] + 1:]
    while rest and (not rest[0].strip() or rest[0].startswith(" ")):
        rest = rest[1:]
    match = _EXCEPTION_LINE.fullmatch(rest[0]) if rest else None
    if match is None:
        return None
    message = "\n".join([match["message"] or "", *rest[1:]]).strip()
    return match["type"], message
