"""One door: ``crossmath <command>`` runs the same command as ``python -m crossmath.<command>``
(and the ``jobs`` entry points), ``crossmath ls`` lists the names the options take, and every
old ``python -m`` entry point still starts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import HydraException

from crossmath import cli
from crossmath.runtime.entry import hydra_problem
from tests.support import REPO_ROOT, command_env


def listed(output: str) -> dict[str, list[str]]:
    """``crossmath ls`` output as {kind: [names]}: a heading ends in a colon, then one indented
    line per name."""
    kinds: dict[str, list[str]] = {}
    names: list[str] = []
    for line in output.splitlines():
        if line.startswith("  "):
            names.append(line.split()[0])
        else:
            names = kinds.setdefault(line.split()[0], [])
    return kinds


def hydra_choices(group: str) -> list[str]:
    """The names Hydra itself offers for ``group`` (from its error for a name that is none)."""
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        with pytest.raises(HydraException) as error:
            compose("run" if group in ("model", "task", "data") else "train",
                    overrides=[f"{group}=no-such-name"])
    _, message = hydra_problem(error.value)
    return message.split("available: ", 1)[1].split(", ")


def test_ls_lists_every_name_each_option_can_take_once(capsys):
    assert cli.main(["ls"]) == 0
    kinds = listed(capsys.readouterr().out)
    assert list(kinds) == ["models", "styles", "tasks", "data", "prompts", "methods", "recipes",
                           "datasets", "protocols"]
    for kind, group in [("models", "model"), ("tasks", "task"), ("data", "data"),
                        ("methods", "method"), ("recipes", "recipe"), ("datasets", "dataset")]:
        assert kinds[kind] == sorted(hydra_choices(group)), kind
    assert {"tiny-random", "oracle", "qwen2.5-vl-3b", "vllm"} <= set(kinds["models"])
    assert {"original", "noborder", "beige", "altstyle"} <= set(kinds["styles"])
    assert kinds["tasks"] == ["crossmath", "mathverse-vision", "mmmu-val"]
    assert kinds["prompts"] == ["crossmath-v1", "release"] and kinds["methods"] == ["grpo", "sft"]
    for names in kinds.values():
        assert names and len(names) == len(set(names))


def test_ls_gives_each_name_a_one_line_description_and_lists_the_kinds_asked_for(capsys):
    assert cli.main(["ls", "styles", "prompts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "styles (styles=[NAME,...]):"
    assert "  original " in "\n".join(lines) and "prompts (model.prompt=NAME):" in lines
    for line in lines:
        if line.startswith("  "):
            name, description = line.split(maxsplit=1)
            assert description.strip() and len(line) < 140, line
    crossmath_v1 = next(line for line in lines if line.split()[0] == "crossmath-v1")
    assert "(id crossmath-v1.1)" in crossmath_v1  # the id its answers record


def test_a_wrong_kind_or_command_is_one_line_and_status_2(capsys):
    assert cli.main(["ls", "nope"]) == 2
    assert capsys.readouterr().err.strip() == (
        "crossmath ls: command line: no kind named 'nope'; choose from models, styles, tasks, "
        "data, prompts, methods, recipes, datasets, protocols (see crossmath ls --help)")
    assert cli.main(["nope"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("crossmath: command line: argument COMMAND: invalid choice: 'nope'")
    assert len(error.splitlines()) == 1
    assert cli.main([]) == 2  # no command: the door's help, every command with its line
    help_text = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"\n  {name} " in help_text


def test_a_hydra_command_behind_the_door_is_the_module_itself(capsys):
    """The override error and the help of ``crossmath run`` are those of ``python -m
    crossmath.run``: its own one-line message and status."""
    assert cli.main(["run", "model=nope"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("crossmath.run: model=nope: no model config named 'nope'")
    assert cli.main(["generate", "sample=1"]) == 2
    assert "crossmath.generate: sample: no such option" in capsys.readouterr().err
    assert cli.main(["generate", "--help"]) == 0
    assert "difficulty: hard" in capsys.readouterr().out  # Hydra's help: generate's config
    assert sys.argv[0] != "crossmath.generate"  # the door leaves the command line as it found it


def test_the_argument_commands_behind_the_door(capsys):
    assert cli.main(["story", "--help"]) == 0
    assert "usage: crossmath story" in capsys.readouterr().out
    assert cli.main(["submit", "finetune", "--help"]) == 0
    assert "usage: crossmath submit finetune" in capsys.readouterr().out
    assert cli.main(["story", "--model", "nope"]) == 2  # checked before any step runs
    assert "model=nope: no model config named 'nope'" in capsys.readouterr().err
    assert cli.main(["submit", "sweep", "--models", "a", "model=b"]) == 2
    assert capsys.readouterr().err.startswith("crossmath submit sweep: command line: give the "
                                              "models with --models")
    assert cli.main(["submit", "evaluate", "model=nope"]) == 2  # before any cluster is asked
    assert capsys.readouterr().err.startswith("crossmath submit evaluate: model=nope: no model")


OLD_ENTRIES = [  # crossmath.run, train, serve and lint: tests/test_command_errors.py
    (["-m", "crossmath.generate", "nope=1"], "crossmath.generate: nope: no such option"),
    (["-m", "crossmath.score", "nope=1"], "crossmath.score: nope: no such option"),
    (["-m", "crossmath.report", "nope=1"], "crossmath.report: nope: no such option"),
    (["-m", "crossmath.render", "nope=1"], "crossmath.render: nope: no such option"),
    (["-m", "crossmath.story", "--bogus"], "python -m crossmath.story: command line"),
    (["-m", "crossmath.submit", "nope"], "python -m crossmath.submit: command line"),
    (["-m", "jobs.evaluate", "model=nope"], "python -m jobs.evaluate: model=nope"),
    (["-m", "jobs.sweep", "--models", "nope"], "python -m jobs.sweep: model=nope"),
    (["-m", "jobs.finetune", "--model", "nope"], "python -m jobs.finetune: model=nope"),
    (["-m", "jobs.finetune_story", "--bogus"], "python -m jobs.finetune_story: command line"),
    (["jobs/train_then_eval.py", "--bogus"], "unrecognized arguments: --bogus"),
    (["-m", "crossmath", "ls", "nope"], "crossmath ls: command line: no kind named 'nope'"),
]


@pytest.mark.slow
@pytest.mark.parametrize("arguments, message", OLD_ENTRIES,
                         ids=[" ".join(a[:2]) for a, _ in OLD_ENTRIES])
def test_every_old_entry_point_still_starts_and_stops_at_a_wrong_input(arguments, message):
    done = subprocess.run([sys.executable, *arguments], cwd=REPO_ROOT, env=command_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]


@pytest.mark.slow
def test_the_installed_console_script_is_the_door(tmp_path):
    script = shutil.which("crossmath", path=str(Path(sys.executable).parent))
    assert script is not None, "crossmath is not installed as a console script (pip install -e .)"
    done = subprocess.run([script, "run", "nope=1"], cwd=tmp_path, env=command_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("crossmath.run: nope: no such option")
    listing = subprocess.run([script, "ls", "models"], cwd=tmp_path, env=command_env(),
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and "tiny-random" in listed(listing.stdout)["models"]


@pytest.mark.parametrize("command, override, where", [
    ("run", "styles=[nope]", "styles[0]"),
    ("run", "samples=0", "samples"),
    ("train", "train.epochs=0", "train.epochs"),
    ("generate", "n=0", "n=0"),
    ("lint", "path=missing.jsonl", "path"),
    ("score", "data=missing.jsonl", "data"),
    ("render", "out=. path=missing.jsonl", "path"),
    ("serve", "server.port=70000", "server.port"),
    ("report", "metric=nope", "metric"),
])
def test_check_stops_each_commands_wrong_option_at_its_door(command, override, where, tmp_path,
                                                           monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", command, *override.split()]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"crossmath.{command}: {where}"), error
    assert len(error.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing run, nothing written


def test_check_passes_a_good_command_line_and_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "run", "model=tiny-random", "data.n=2"]) == 0
    assert cli.main(["check", "train", "model=tiny-random"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["crossmath.run", "crossmath.train"]
    assert all("nothing was run" in line for line in out)
    assert list(tmp_path.iterdir()) == []  # no results folder, no MLflow store, no model built


def test_check_takes_only_commands_with_overrides(capsys):
    assert cli.main(["check", "story"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("crossmath check: command: check takes one of run, ")
    assert cli.main(["check"]) == 2
