"""MLflow: one run per evaluation across resumes, a store that fails fast, one report row each."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from mlflow.tracking import MlflowClient

from crossmath.tracking import liveness
from crossmath.tracking import mlflow_store as tracking
from crossmath.tracking.ui_view import VIEW_TAG


@pytest.fixture
def uri(tracking_db) -> str:
    return f"sqlite:///{tracking_db}"


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


@pytest.mark.slow
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


@pytest.mark.slow
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



def test_experiments_have_the_model_development_kind_and_the_headline_view(uri):
    _open(uri, "eval-a")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e")
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    view = json.loads(experiment.tags[VIEW_TAG])
    assert view["columnOrder"][:6] == ["attributes.`Run Name`", "metrics.`acc/text`",
                                       "metrics.`acc/image`", "metrics.`acc/hybrid`",
                                       "metrics.`acc/gap_T-I`", "metrics.`acc/gap_T-TI`"]
    assert set(view["columnOrder"][1:6]) <= set(view["selectedColumns"])

    older = client.create_experiment("older")  # made by an earlier version: no kind, no view
    chosen = client.create_experiment("chosen", tags={tracking.EXPERIMENT_KIND_TAG: "finetuning"})
    for name in ("older", "chosen"):
        tracking.open_evaluation_run(tracking_uri=uri, experiment=name, evaluation_id="x",
                                     run_name="m/x", params={}, tags={})
    assert client.get_experiment(older).tags[tracking.EXPERIMENT_KIND_TAG] == (
        "custom_model_development")
    assert client.get_experiment(chosen).tags[tracking.EXPERIMENT_KIND_TAG] == "finetuning"
    assert VIEW_TAG in client.get_experiment(older).tags


def test_a_run_names_its_command_and_is_renamed_and_reopened_on_resume(uri):
    first = tracking.open_evaluation_run(tracking_uri=uri, experiment="e", evaluation_id="ev",
                                         run_name="old-name/ev", params={},
                                         tags={"mlflow.note.content": "running"})
    client = MlflowClient(uri)
    tags = client.get_run(first).data.tags
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
    assert tags[tracking.COMMAND_TAG].split()[0] in ("python", tags["mlflow.source.name"])
    client.set_tag(first, tracking.END_CAUSE_TAG, "no heartbeat since ...")
    client.set_terminated(first, status="KILLED")
    again = tracking.open_evaluation_run(tracking_uri=uri, experiment="e", evaluation_id="ev",
                                         run_name="model/data/T,I/ev", params={},
                                         tags={"mlflow.note.content": "running again"})
    run = client.get_run(again)
    assert again == first and run.info.run_name == "model/data/T,I/ev"
    assert run.info.status == "RUNNING" and tracking.END_CAUSE_TAG not in run.data.tags
    assert run.data.tags["mlflow.note.content"] == "running again"


def test_a_heartbeat_beats_until_stopped(uri):
    run_id = _open(uri, "eval-a")
    client = MlflowClient(uri)

    def last_beat() -> int:
        return int(client.get_run(run_id).data.tags[liveness.HEARTBEAT_TAG])

    with liveness.Heartbeat(uri, run_id, every_s=0.2):
        first = last_beat()
        deadline = time.monotonic() + 10
        while last_beat() == first:  # a beat every 0.2 s: the next one comes soon
            assert time.monotonic() < deadline, "no second beat in 10 s"
            time.sleep(0.05)
        assert last_beat() > first
    stopped = last_beat()
    time.sleep(0.6)  # three beats' worth: none may come after the stop
    assert last_beat() == stopped


def test_only_runs_without_a_recent_heartbeat_are_marked_killed(uri, tmp_path):
    client = MlflowClient(uri)
    alive, gone, never, done = (_open(uri, name) for name in ("alive", "gone", "never", "done"))
    now = int(time.time() * 1000)
    client.set_tag(alive, liveness.HEARTBEAT_TAG, str(now - 60_000))
    client.set_tag(gone, liveness.HEARTBEAT_TAG, str(now - 3_600_000))
    _finish(uri, done, tmp_path, incomplete=False, value=1.0)
    stale = liveness.stale_runs(uri, "e", 600, now_ms=now + 20 * 60_000)  # the start is old
    assert {run.run_id for run in stale} == {gone, never, alive}
    assert {run.run_id for run in liveness.stale_runs(uri, "e", 600, now_ms=now)} == {gone}

    marked = liveness.mark_stale_runs(uri, "e", 600)
    assert [run.run_id for run in marked] == [gone]
    run = client.get_run(gone)
    assert run.info.status == "KILLED" and run.info.end_time == now - 3_600_000
    assert run.data.tags[tracking.INCOMPLETE_TAG] == "true"
    assert run.data.tags[tracking.END_CAUSE_TAG].startswith("no heartbeat since ")
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.get_run(done).info.status == "FINISHED"
    assert liveness.mark_stale_runs(uri, "no-such-experiment", 600) == []
