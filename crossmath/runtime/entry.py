"""The entry point every command shares: Hydra, failures reported, clean stops.

``@command("crossmath.run", config_name="run")`` over a command's ``main(cfg)`` gives what
``@hydra.main`` gives (the command line, ``-m`` sweeps, ``--cfg job``, ``--help``) and:

- a wrong command line stops before anything runs, with one line on stderr naming the option
  and what is allowed, exit status 2. That covers what Hydra itself finds while composing the
  config: an unknown config name in a group (``model=nope``: the available names), an unknown
  key (``sample=1``: the closest valid keys), an override Hydra cannot parse, a mandatory
  value not given, an interpolation that does not resolve, and a command-line flag it does not
  know. Hydra's own report of these is several lines and exit status 1;
- failures inside the command are reported by ``errors.reports_failures``;
- SIGINT and SIGTERM stop the command cleanly (``stops``): one line, status 130 or 143.

``HYDRA_FULL_ERROR=1`` re-raises everything unchanged, as Hydra's own switch does. Called with
a composed config (``main(cfg)``, as tests do), the command just runs.

A command names its ``door``: the function that checks its composed config before any work
(``RunSettings.from_config`` for the main job). Inside ``checking_only()`` (``crossmath check
COMMAND [overrides]``) a command composes its config, passes it through its door and stops,
saying so: nothing is run, written or logged.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import os
import sys
from typing import Any, Callable, Iterator, Sequence

import hydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from crossmath.runtime.errors import ConfigError, report_failure, reports_failures
from crossmath.runtime.stops import Stopped, exit_stopped, stopping_cleanly

FULL_ERROR_ENV = "HYDRA_FULL_ERROR"
MAX_LISTED = 12
_HIDDEN_KEYS = frozenset({"hydra"})
_CHECK_ONLY = contextvars.ContextVar("crossmath_check_only", default=False)

Door = Callable[[DictConfig], Any]


@contextlib.contextmanager
def checking_only() -> Iterator[None]:
    """Commands started inside check their command line through their door, then stop."""
    token = _CHECK_ONLY.set(True)
    try:
        yield
    finally:
        _CHECK_ONLY.reset(token)


def command(name: str, *, config_name: str, door: Door | None = None,
            config_path: str = "pkg://crossmath.conf",
            resumable: bool = False) -> Callable[[Callable], Callable]:
    """Make ``main(cfg)`` the command ``name`` (as the user runs it: ``crossmath.run``);
    ``door`` checks its config before any work (None: composing it is the whole check);
    ``resumable``: a rerun of a stopped one resumes from what it saved."""

    def decorate(main: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        task = reports_failures(name)(_config_errors_named(main))
        check = reports_failures(name)(_config_errors_named(functools.partial(
            _check_only, name, door)))
        user_full_error = _UserSetting(FULL_ERROR_ENV)

        @functools.wraps(main)
        def in_user_environment(cfg: DictConfig) -> Any:
            with user_full_error.restored():
                return check(cfg) if _CHECK_ONLY.get() else task(cfg)

        app = hydra.main(version_base="1.3", config_path=config_path,
                         config_name=config_name)(in_user_environment)

        @functools.wraps(main)
        def entry(cfg: DictConfig | None = None) -> Any:
            if cfg is not None:
                return task(cfg)
            user_full_error.read()
            with stopping_cleanly():
                try:
                    check_command_line(sys.argv[1:])
                    with user_full_error.forced("1"):  # Hydra raises; we report below
                        return app()
                except Stopped as stop:
                    exit_stopped(name, stop, resumable=resumable)
                except (HydraException, OmegaConfBaseException, ConfigError) as error:
                    if user_full_error.value == "1":
                        raise
                    sys.exit(report_failure(name, ConfigError(*hydra_problem(error))))

        return entry

    return decorate


def _check_only(name: str, door: Door | None, cfg: DictConfig) -> None:
    if door is not None:
        door(cfg)
    print(f"{name}: ok: the command line composes and every option passes the door; "
          "nothing was run")


def check_command_line(arguments: Sequence[str]) -> None:
    """Hydra's flags and the syntax of each override, checked before Hydra reads them (whose
    own report of a bad flag is a usage block, of a bad override a message without it)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = get_args_parser()
    parser.error = _raise_flag_error  # type: ignore[method-assign]
    overrides = parser.parse_args(list(arguments)).overrides
    reader = OverridesParser.create()
    for override in overrides:
        try:
            reader.parse_override(override)
        except HydraException as error:
            reason = str(error).splitlines()[0]
            raise ConfigError(override, f"cannot be read ({reason}); write KEY=VALUE, quoting "
                                        "lists and special characters for the shell, e.g. "
                                        "'styles=[original,beige]'") from None


def _raise_flag_error(message: str) -> None:
    raise ConfigError("command line", f"{message}; options are KEY=VALUE overrides "
                                      "(see --help)")


def hydra_problem(error: BaseException) -> tuple[str, str]:
    """``(where, what)`` of an error Hydra or OmegaConf raised while composing a config."""
    if isinstance(error, ConfigError):
        return error.where, error.problem
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, choice = str(error.missing_cfg_file).rpartition("/")
        options = list(error.options or [])
        if group and options:
            return f"{group}={choice}", (f"no {group} config named {choice!r}; available: "
                                         f"{', '.join(options)}")
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        return str(cause.full_key), _unknown_key(cause)
    if isinstance(cause, MissingMandatoryValue) and cause.full_key:
        return str(cause.full_key), f"not given, and it has no default; add {cause.full_key}=..."
    if isinstance(cause, InterpolationResolutionError) and cause.full_key:
        return str(cause.full_key), f"cannot be resolved: {_first_line(cause.msg or str(cause))}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "command line", "; ".join(lines[:3]) or type(error).__name__


def _unknown_key(error: ConfigAttributeError | ConfigKeyError) -> str:
    """What to say about a key that is not in the config: the closest valid keys beside it."""
    key = str(error.key)
    parent = error.parent_node
    known = [str(k) for k in parent.keys() if str(k) not in _HIDDEN_KEYS] \
        if isinstance(parent, DictConfig) else []
    closest = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    if closest:
        hint = f"closest: {', '.join(closest)}"
    elif known:
        listed = ", ".join(known[:MAX_LISTED]) + (", ..." if len(known) > MAX_LISTED else "")
        hint = f"valid keys here: {listed}"
    else:
        hint = "its parent takes no keys"
    return f"no such option ({hint}); +{error.full_key}=... would add a new key"


def _config_errors_named(main: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """``main`` with OmegaConf's errors about the user's config (a mandatory value not given,
    an interpolation that does not resolve) turned into ``ConfigError``s naming the key."""

    @functools.wraps(main)
    def named(cfg: DictConfig) -> Any:
        try:
            return main(cfg)
        except (MissingMandatoryValue, InterpolationResolutionError) as error:
            raise ConfigError(*hydra_problem(error)) from None

    return named


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


class _UserSetting:
    """An environment variable as the user set it, forced to another value around Hydra's
    own code and restored around the command's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.value: str | None = None

    def read(self) -> None:
        self.value = os.environ.get(self.name)

    @contextlib.contextmanager
    def forced(self, value: str) -> Iterator[None]:
        os.environ[self.name] = value
        try:
            yield
        finally:
            self._set(self.value)

    @contextlib.contextmanager
    def restored(self) -> Iterator[None]:
        forced = os.environ.get(self.name)
        self._set(self.value)
        try:
            yield
        finally:
            self._set(forced)

    def _set(self, value: str | None) -> None:
        if value is None:
            os.environ.pop(self.name, None)
        else:
            os.environ[self.name] = value

