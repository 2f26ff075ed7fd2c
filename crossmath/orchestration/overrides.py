"""Hydra overrides as the chained commands pass them on: defaults first, the user's own after."""

from __future__ import annotations

from typing import Iterable, Mapping


def with_defaults(defaults: Mapping[str, str], overrides: Iterable[str]) -> list[str]:
    """Hydra overrides: ``defaults`` for keys the user did not set, then the user's own."""
    overrides = list(overrides)
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return [f"{key}={value}" for key, value in defaults.items() if key not in given] + overrides
