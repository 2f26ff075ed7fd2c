"""Checks every config section of fine-tuning shares (``train``, ``dataset``, ``grpo``, ...).

Each section is read into a frozen dataclass; a key that is not one of its fields is a typo to
report with the section's name, never a setting to drop silently. Imports neither torch nor Ray.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping


def check_known_fields(section: str, values: Mapping[str, Any], cls: type) -> None:
    """Refuse keys of ``values`` that are not fields of the dataclass ``cls``."""
    known = sorted(field.name for field in dataclasses.fields(cls))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{section}: unknown field(s) {unknown}; known: {known}")


def check_at_least_one(section: str, settings: Any, names: Iterable[str]) -> None:
    """Refuse counts below 1 among the fields ``names`` of ``settings``."""
    for name in names:
        value = getattr(settings, name)
        if value < 1:
            raise ValueError(f"{section}.{name} must be at least 1, got {value}")
