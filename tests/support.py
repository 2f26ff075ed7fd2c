"""Helpers shared by tests that run crossmath's commands in subprocesses."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def command_env(**extra: str) -> dict[str, str]:
    """The environment for a command run in a subprocess: local Ray without its auth token,
    and the repository on ``PYTHONPATH`` (prepended) so that ``tests.doubles`` can be named
    as a model's ``_target_`` from any working directory."""
    inherited = os.environ.get("PYTHONPATH")
    path = str(REPO_ROOT) + (os.pathsep + inherited if inherited else "")
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": path, **extra}
