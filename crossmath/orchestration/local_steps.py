"""Planned steps run here, one after another, each as its own process (``python -m``)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Sequence

from crossmath.orchestration.story_plan import Step
from crossmath.pipeline.failures import EXIT_INCOMPLETE


@dataclass
class StepsOutcome:
    """How a run of steps ended: 0, or the exit status of the step it stopped at; and the
    evaluations that finished with failed requests (exit status 3) and were kept."""

    status: int = 0
    incomplete: set[str] = field(default_factory=set)


def step_command(step: Step) -> list[str]:
    """The step's command line, with this interpreter."""
    return [sys.executable, "-m", step.module, *step.overrides]


def run_steps(steps: Sequence[Step], *, keep_incomplete: bool = True) -> StepsOutcome:
    """Run ``steps`` in order, stopping at the first that fails. With ``keep_incomplete``, an
    evaluation that finished with failed requests (its results written all the same) is noted
    and the next step runs; without, it stops the run as any failure does."""
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    outcome = StepsOutcome()
    for step in steps:
        command = step_command(step)
        print(f"== {step.name}: {' '.join(command)}", flush=True)
        status = subprocess.run(command, env=env).returncode
        if keep_incomplete and status == EXIT_INCOMPLETE and step.stage is not None:
            outcome.incomplete.add(step.name)
            continue
        if status != 0:
            print(f"== {step.name} failed with exit status {status}; rerun the same command to "
                  "resume", file=sys.stderr)
            outcome.status = status
            return outcome
    return outcome
