"""The door of the commands that take arguments rather than Hydra overrides alone (``crossmath
story``, ``crossmath submit``, ``jobs/``): their command line is checked here, on this machine,
before anything is submitted to a cluster or run.

A wrong flag, a config name that does not exist (``model=nope``, ``--model nope``) or a key
that is not an option (``sample=1``) stops the job with one line on stderr naming it and what
is allowed, exit status 2, as the commands do (``crossmath.runtime.entry``): not minutes later,
inside a job on the cluster. The overrides are composed here with the same configs the
commands use; what only the cluster can resolve (``${oc.env:...}`` paths) is left to it.
"""

from __future__ import annotations

import argparse
from typing import Callable, NoReturn, Sequence

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from crossmath.runtime.entry import hydra_problem
from crossmath.runtime.errors import ConfigError, report_failure
from crossmath.runtime.stops import Stopped, exit_stopped, stopping_cleanly


class JobParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a ``ConfigError``), not a usage block."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError("command line", f"{message} (see {self.prog} --help)")


def add_stage_overrides(parser: argparse.ArgumentParser) -> None:
    """``--train``, ``--grpo`` and ``--eval``: the Hydra overrides of a fine-tuning story's steps
    (``story_plan.Story``), each option's words up to the next option."""
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of the SFT step (crossmath train)")
    parser.add_argument("--grpo", nargs="*", default=None, metavar="KEY=VALUE",
                        help="add GRPO from the SFT adapter, with these overrides (crossmath "
                             "train method=grpo)")
    parser.add_argument("--eval", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of every evaluation (crossmath run)")


def checked_overrides(config_name: str, overrides: Sequence[str]) -> list[str]:
    """``overrides`` of the command whose config is ``config_name`` (``run``, ``train``),
    once Hydra composes them; a ``ConfigError`` naming the first one that cannot be."""
    try:
        with initialize_config_module("crossmath.conf", version_base="1.3"):
            compose(config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(*hydra_problem(error)) from None
    return list(overrides)


def job_entry(prog: str, main: Callable[[], int]) -> int:
    """Run a job's ``main``: its exit status, or a failure reported as the commands report
    theirs (a wrong input: one line, status 2); SIGINT and SIGTERM stop it cleanly."""
    with stopping_cleanly():
        try:
            return main()
        except Stopped as stop:
            exit_stopped(prog, stop)
        except Exception as error:  # noqa: BLE001 - reported, never swallowed
            return report_failure(prog, error)
