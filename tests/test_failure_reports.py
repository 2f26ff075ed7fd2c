"""How failures are reported: user errors in one line, anything else ending with its root cause,
through the wrappers Ray puts around a worker's exception (crossmath.runtime.errors)."""

from __future__ import annotations

import io
import json

import pytest

from crossmath.puzzle.grid import GridFormatError
from crossmath.runtime.errors import ConfigError, find_cause, report_failure
from tests.doubles import FailingStage


def reported(error: BaseException) -> tuple[int, list[str]]:
    stream = io.StringIO()
    status = report_failure("crossmath.test", error, stream)
    return status, stream.getvalue().splitlines()


def raised(error: BaseException, cause: BaseException | None = None) -> BaseException:
    """``error`` as it arrives in an ``except``: raised (from ``cause``), with its traceback."""
    try:
        raise error from cause
    except BaseException as caught:  # noqa: BLE001 - the test wants it back
        return caught


def test_a_user_error_is_one_line_and_status_2():
    status, lines = reported(raised(ConfigError("data.path", "/x does not exist")))
    assert (status, lines) == (2, ["crossmath.test: data.path: /x does not exist"])
    status, lines = reported(raised(GridFormatError("not valid JSON", source="a.jsonl", line=3)))
    assert (status, lines) == (2, ["crossmath.test: a.jsonl:3: not valid JSON"])


def test_a_bug_prints_its_traceback_and_ends_with_the_root_cause():
    status, lines = reported(raised(RuntimeError("loading failed"), KeyError("weights")))
    assert status == 1
    assert "Traceback (most recent call last):" in lines
    assert any("RuntimeError: loading failed" in line for line in lines)  # the context stays
    assert lines[-1] == "crossmath.test: failed: KeyError: 'weights'"


def test_a_ray_task_error_is_unwrapped_to_the_workers_exception():
    from ray.exceptions import RayTaskError

    remote = ('Traceback (most recent call last):\n  File "stage.py", line 9, in __call__\n'
              '    raise ValueError("bad batch")\nValueError: bad batch')
    error = RayTaskError("stage", remote, ValueError("bad batch")).as_instanceof_cause()
    cause = find_cause(raised(RuntimeError("the pipeline failed"), error))
    assert (cause.type_name, cause.message, cause.remote) == ("ValueError", "bad batch", True)
    status, lines = reported(raised(error))
    assert status == 1 and 'File "stage.py", line 9' in "\n".join(lines)
    assert lines[-1] == "crossmath.test: failed in a Ray worker: ValueError: bad batch"


def test_a_ray_train_worker_failure_is_unwrapped_to_the_first_workers_exception():
    from ray.train import WorkerGroupError

    error = WorkerGroupError("rank 1 failed", {1: ValueError("rank 1"), 0: KeyError("rank 0")})
    assert find_cause(error).summary == "KeyError: 'rank 0'"


@pytest.mark.slow
@pytest.mark.parametrize("in_constructor", [False, True])
def test_a_bug_in_a_ray_data_stage_ends_with_its_cause(ray_local, in_constructor):
    error = _run_failing_stage(json.JSONDecodeError("Expecting value", "{", 1), in_constructor)
    status, lines = reported(error)
    assert status == 1
    assert lines[-1] == ("crossmath.test: failed in a Ray worker: JSONDecodeError: "
                         "Expecting value: line 1 column 2 (char 1)")
    assert "UDF failed" not in "\n".join(lines)  # Ray's wrappers are not shown


@pytest.mark.slow
def test_a_user_error_inside_a_ray_worker_is_still_one_line(ray_local):
    error = _run_failing_stage(ConfigError("styles[0]", "unknown style 'nope'"), False)
    assert reported(error) == (2, ["crossmath.test: styles[0]: unknown style 'nope'"])


def _run_failing_stage(error: Exception, in_constructor: bool) -> BaseException:
    # The failed dataset's actor outlives the test (the exception's traceback keeps the dataset
    # alive): it reserves no CPU, so the session's later tests (Ray Train needs every CPU of
    # the local Ray) are not starved by it.
    data = ray_data().range(4).map_batches(
        FailingStage, fn_constructor_kwargs={"error": error, "in_constructor": in_constructor},
        batch_size=2, compute=ray_data().ActorPoolStrategy(size=1), num_cpus=0)
    with pytest.raises(Exception) as caught:
        data.take_all()
    return caught.value


def ray_data():
    import ray.data

    return ray.data
