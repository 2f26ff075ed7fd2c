"""MLflow: one run per evaluation across resumes, a store that fails fast, one report row each."""

from __future__ import annotations

import os
import socket

import pytest
from mlflow.tracking import MlflowClient

from crossmath.tracking import mlflow_store as tracking


@pytest.fixture
def uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _open(uri: str, evaluation_id: str, **params) -> str:
    return tracking.open_evaluation_run(
        tracking_uri=uri, experiment="e", evaluation_id=evaluation_id, run_name=f"m/{evaluation_id}",
        params={"model": {"name": "m"}, **params}, tags={"model": "m"})


def _finish(uri: str, run_id: str, tmp_path, incomplete: bool, value: float) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(f'{{"groups": [], "gaps": [], "value": {value}}}', encoding="utf-8")
    tracking.finish_evaluation_run(
        uri, run_id, metrics={"text/all/macro_acc": value, **{f"m{i}": i for i in range(1500)}},
        tags={tracking.INCOMPLETE_TAG: str(incomplete).lower()}, artifacts=[metrics])


def test_a_resumed_evaluation_continues_its_run(uri, tmp_path):
    first = _open(uri, "eval-a", samples=4)
    _finish(uri, first, tmp_path, incomplete=True, value=10.0)
    again = _open(uri, "eval-a", samples=4)
    client = MlflowClient(uri)
    assert again == first and client.get_run(first).info.status == "RUNNING"
    _finish(uri, again, tmp_path, incomplete=False, value=20.0)
    run = client.get_run(first)
    assert run.info.status == "FINISHED" and run.data.tags[tracking.INCOMPLETE_TAG] == "false"
    assert run.data.metrics["text/all/macro_acc"] == 20.0 and len(run.data.metrics) == 1501
    assert run.data.params["samples"] == "4" and run.data.tags["evaluation_id"] == "eval-a"
    other = _open(uri, "eval-b")
    assert other != first
    assert len(client.search_runs([run.info.experiment_id])) == 2


def test_report_sees_one_entry_per_evaluation(uri, tmp_path):
    a = _open(uri, "eval-a")
    _finish(uri, a, tmp_path, incomplete=False, value=1.0)
    _finish(uri, _open(uri, "eval-a"), tmp_path, incomplete=False, value=2.0)
    b = _open(uri, "eval-b")
    _finish(uri, b, tmp_path, incomplete=True, value=3.0)
    tracking.close_run(uri, _open(uri, "training"))  # finished, but holds no metrics.json
    runs = tracking.evaluation_runs(uri, "e")
    assert [(r.run_id, r.evaluation_id, r.incomplete) for r in runs] == [
        (a, "eval-a", False), (b, "eval-b", True)]
    assert '"value": 2.0' in runs[0].metrics_file.read_text(encoding="utf-8")  # the latest


def test_an_unreachable_tracking_server_fails_at_once_in_one_line():
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(tracking.TrackingUnavailable) as failed:
        _open(f"http://127.0.0.1:{port}", "eval-a")
    message = str(failed.value)
    assert f"http://127.0.0.1:{port} is not usable" in message and "\n" not in message
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") == retries  # restored after the check
