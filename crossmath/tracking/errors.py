"""The tracking store's user-facing errors, importable without importing MLflow (reporting a
wrong option must not wait for MLflow's import)."""

from __future__ import annotations

from crossmath.core.errors import UserError


class TrackingUnavailable(UserError, RuntimeError):
    """The tracking store cannot be reached or written; the message is one line."""


class UnknownExperiment(ValueError):
    """An experiment name the tracking store does not hold; the message names those it does."""
