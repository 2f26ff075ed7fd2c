"""Each bad input of issue #12, given to the real command in a subprocess: it stops at the door
with a non-zero status and one short message naming the input, no traceback; a failure inside
Ray ends with its root cause as the last line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import command_env, joining, last_own_line

MAX_LINES = 30


def crossmath(command: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"crossmath.{command}", *overrides], cwd=cwd,
                          env=command_env(HYDRA_FULL_ERROR="0"), capture_output=True, text=True,
                          timeout=300)


def assert_stopped_at_the_door(done: subprocess.CompletedProcess, command: str,
                               *named: str) -> str:
    """The message, after checking the run ended as a user error must: status 2, a short output
    without a traceback, the message last on stderr naming every ``named`` piece."""
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert len(output.splitlines()) < MAX_LINES and "Traceback" not in output, output
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"crossmath.{command}: ")
    for piece in named:
        assert piece in message, message
    return message


@pytest.fixture
def bad_adapter(tmp_path: Path) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8,}', encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(b"\0")
    return folder


def run_overrides(tmp_path: Path, *overrides: str) -> list[str]:
    return [f"out_dir={tmp_path / 'out'}", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'm.db'}",
            *overrides]


@pytest.mark.slow
@pytest.mark.parametrize("overrides, named", [
    (["styles=[nope]"], ["styles[0]", "unknown style 'nope'"]),
    (["data.n=0"], ["data.n", "got 0"]),
    (["data=official", "data.path={sample}", "data.n=-1"], ["data.n", "got -1"]),
    (["data=official", "data.path={missing}"], ["data.path", "does not exist"]),
    (["model=tiny-random", "model.adapter={adapter}"],
     ["model.adapter", "adapter_config.json is not valid JSON", "line 1, column 9"]),
])
def test_the_main_job_stops_at_the_door(tmp_path, official_sample, bad_adapter, overrides, named):
    filled = [o.format(sample=official_sample, missing=tmp_path / "no-release",
                       adapter=bad_adapter) for o in overrides]
    done = crossmath("run", *run_overrides(tmp_path, *filled), cwd=tmp_path)
    assert_stopped_at_the_door(done, "run", *named)
    assert not (tmp_path / "out").exists()  # stopped before any work


@pytest.mark.slow
def test_a_failure_inside_ray_ends_with_its_cause(tmp_path, ray_local):
    done = crossmath("run", *run_overrides(  # joining the session's Ray, as on a cluster
        tmp_path, "model._target_=tests.doubles.BrokenBackend", "+model.message=out of cheese",
        "data.n=2", "samples=1", "modalities=[text]", joining(ray_local)), cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert last_own_line(done.stderr) == \
        "crossmath.run: failed in a Ray worker: RuntimeError: out of cheese"
    assert done.stderr.count("out of cheese") <= 3  # the cause once, not once per wrapper


@pytest.mark.slow
def test_training_stops_at_the_door(tmp_path, bad_adapter):
    done = crossmath("train", f"out_dir={tmp_path / 'train'}", f"model.adapter={bad_adapter}",
                     cwd=tmp_path)
    assert_stopped_at_the_door(done, "train", "model.adapter is set")
    done = crossmath("train", f"out_dir={tmp_path / 'train'}", "dataset.styles=[nope]",
                     cwd=tmp_path)
    assert_stopped_at_the_door(done, "train", "dataset.styles[0]", "unknown style 'nope'")


@pytest.mark.slow
def test_the_server_stops_at_the_door(tmp_path, bad_adapter):
    done = crossmath("serve", f"model.adapter={bad_adapter}", cwd=tmp_path)
    assert_stopped_at_the_door(done, "serve", "model.adapter", "not valid JSON")
    done = crossmath("serve", "server.api_key_env=CROSSMATH_NO_SUCH_VARIABLE", cwd=tmp_path)
    assert_stopped_at_the_door(done, "serve", "server.api_key_env", "CROSSMATH_NO_SUCH_VARIABLE")


@pytest.mark.slow
def test_lint_names_a_missing_file(tmp_path):
    done = crossmath("lint", f"path={tmp_path / 'missing.jsonl'}", cwd=tmp_path)
    assert_stopped_at_the_door(done, "lint", "path", "missing.jsonl does not exist")
