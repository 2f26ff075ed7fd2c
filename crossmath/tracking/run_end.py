"""How a run that did not finish is left in MLflow: KILLED or FAILED, saying why.

A command stopped by a signal marks its run ``KILLED``; one that failed marks it ``FAILED``.
Either way the run gets the tag ``incomplete=true`` (its metrics, if any, are not the whole
evaluation) and ``end_cause``, one line naming the cause: ``signal SIGTERM``, or
``error: <type>: <first line of the message>``. A later run of the same command reopens the
run and, when it finishes, sets ``incomplete`` again from its own outcome.
"""

from __future__ import annotations

import logging

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from crossmath.tracking.mlflow_store import INCOMPLETE_TAG, fail_fast

END_CAUSE_TAG = "end_cause"
MAX_CAUSE_CHARS = 250

log = logging.getLogger(__name__)


def end_cause(error: BaseException) -> str:
    """One line for the ``end_cause`` tag: ``signal SIGTERM`` or ``error: Type: message``."""
    if isinstance(error, KeyboardInterrupt):  # a crossmath ``Stopped`` names its signal
        return f"signal {getattr(error, 'signal_name', 'SIGINT')}"
    lines = str(error).strip().splitlines()
    message = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    cause = f"error: {message}"
    return cause if len(cause) <= MAX_CAUSE_CHARS else cause[:MAX_CAUSE_CHARS - 3] + "..."


def end_status(error: BaseException) -> str:
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


def mark_run_ended(tracking_uri: str, run_id: str, error: BaseException) -> None:
    """Close ``run_id`` as stopped or failed by ``error``, tagged incomplete with its cause.

    A tracking store that fails too is only logged: the error that ended the run is the one
    the command reports.
    """
    status = end_status(error)
    try:
        with fail_fast():
            client = MlflowClient(tracking_uri)
            client.log_batch(run_id, tags=[RunTag(INCOMPLETE_TAG, "true"),
                                           RunTag(END_CAUSE_TAG, end_cause(error))])
            client.set_terminated(run_id, status=status)
    except Exception as close_error:  # noqa: BLE001 - see the docstring
        log.warning("could not mark MLflow run %s %s: %s", run_id, status, close_error)


def clear_end_cause(tracking_uri: str, run_id: str) -> None:
    """A run that finished after all no longer carries the cause of an earlier stop."""
    client = MlflowClient(tracking_uri)
    if END_CAUSE_TAG in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, END_CAUSE_TAG)
