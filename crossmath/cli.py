"""crossmath COMMAND [arguments]: one door to every command.

    crossmath run model=tiny-random     # the same as: python -m crossmath.run model=tiny-random
    crossmath ls [models styles ...]    # the names options can take, one line each
    crossmath check run styles=[nope]   # the command line checked at the command's door, nothing run
    crossmath COMMAND --help            # a command's own options

The Hydra commands take the overrides of python -m crossmath.COMMAND (-m sweeps, --cfg job and
--help included): the door runs the command's module as python -m runs it (runpy), so its exit
statuses, one-line errors and clean stops (crossmath.runtime.entry) are the module's own.
story, submit and ls take arguments: story and submit those of python -m jobs.finetune_story
and python -m jobs.evaluate|sweep|finetune.
"""

from __future__ import annotations

import argparse
import importlib
import runpy
import sys
from dataclasses import dataclass
from typing import Sequence

from crossmath.orchestration.door import JobParser, job_entry
from crossmath.runtime.entry import checking_only
from crossmath.runtime.errors import ConfigError, report_failure

PROG = "crossmath"
USAGE_STATUS = 2  # no command named: the help, and the status of a wrong command line


@dataclass(frozen=True)
class Command:
    """A verb of the door: the module that is the command, and what it does, in a line."""

    module: str
    summary: str
    hydra: bool = True  # a Hydra app (overrides); otherwise ``main(argv, prog)`` (arguments)


COMMANDS: dict[str, Command] = {
    "run": Command("crossmath.run", "evaluate a model across modalities and styles, or on a "
                                    "transfer task (task=...)"),
    "generate": Command("crossmath.generate", "new puzzles, each proved unique, in the "
                                              "release's format and layout"),
    "lint": Command("crossmath.lint", "check official-format records: they parse, hold, and "
                                      "have one solution"),
    "score": Command("crossmath.score", "score the release's own prediction logs with its "
                                        "definitions"),
    "report": Command("crossmath.report", "compare the evaluations of an MLflow experiment"),
    "render": Command("crossmath.render", "render an official-format file's images in a style"),
    "train": Command("crossmath.train", "LoRA SFT or GRPO on Ray Train"),
    "serve": Command("crossmath.serve", "any backend as an OpenAI-compatible server"),
    "story": Command("crossmath.story", "the fine-tuning story: evaluate, fine-tune, evaluate "
                                        "again, compare", hydra=False),
    "submit": Command("crossmath.submit", "run on a Ray cluster as Ray Jobs: evaluate, sweep, "
                                          "finetune", hydra=False),
    "ls": Command("crossmath.ls", "models, styles, tasks, prompt sets, methods, recipes...: "
                                  "the names options take", hydra=False),
    "check": Command("crossmath.cli", "check a command line without running it: crossmath check "
                                      "COMMAND [overrides]", hydra=False),
}
CHECKED = [name for name, command in COMMANDS.items() if command.hydra]  # what check takes


def parser() -> JobParser:
    """The door's own command line: a command's name, then the command's arguments as they are."""
    width = max(len(name) for name in COMMANDS)
    listed = "\n".join(f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items())
    door = JobParser(prog=PROG, description=__doc__, epilog=f"commands:\n{listed}",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    door.add_argument("command", choices=list(COMMANDS), metavar="COMMAND",
                      help=f"one of: {', '.join(COMMANDS)}")
    door.add_argument("arguments", nargs=argparse.REMAINDER,
                      help="the command's overrides or arguments (see crossmath COMMAND --help)")
    return door


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named first in ``argv`` (``sys.argv[1:]``); its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    door = parser()
    if not argv:
        door.print_help()
        return USAGE_STATUS
    try:
        try:
            args = door.parse_args(argv)
        except ConfigError as error:  # an unknown command: one line, as any wrong option
            return report_failure(PROG, error)
        command = COMMANDS[args.command]
        if args.command == "check":
            return check(args.arguments)
        if command.hydra:
            return run_as_main(command.module, args.arguments)
        prog = f"{PROG} {args.command}"
        module = importlib.import_module(command.module)
        return job_entry(prog, lambda: module.main(args.arguments, prog=prog))
    except SystemExit as exit_:  # --help, and every command's own exit status
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        raise


def check(arguments: Sequence[str]) -> int:
    """``crossmath check COMMAND [overrides]``: the command composes its config and passes it
    through its door (every option checked, names resolved), then stops; 0 when all is well,
    else one line naming the option and 2."""
    if not arguments or arguments[0] not in CHECKED:
        given = repr(arguments[0]) if arguments else "nothing"
        return report_failure(f"{PROG} check", ConfigError(
            "command", f"check takes one of {', '.join(CHECKED)}, then its overrides; "
                       f"got {given}"))
    with checking_only():
        return run_as_main(COMMANDS[arguments[0]].module, arguments[1:])


def run_as_main(module: str, arguments: Sequence[str]) -> int:
    """Run ``module`` as ``python -m <module> <arguments>`` does: its ``__main__`` block, with
    ``sys.argv`` its command line (restored after); 0 unless it exits otherwise."""
    saved = sys.argv
    sys.argv = [module, *arguments]  # runpy puts the module's file first, as python -m does
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved
    return 0
