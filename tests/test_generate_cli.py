"""``python -m crossmath.generate``: the release's layout, and bad options stopped at the door."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from omegaconf import OmegaConf

from crossmath.drawing import StyleError
from crossmath.puzzle.consistency import lint_jsonl
from crossmath.puzzle.table import read_puzzle_table
from crossmath.settings.generate import (
    GenerateSettings,
    check_count,
    check_difficulty,
    check_styles,
)


def run_generate(*overrides: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossmath.generate", *overrides], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_generate_writes_the_table_and_each_styles_files(tmp_path):
    out = tmp_path / "set"
    done = run_generate("n=2", "difficulty=easy", "seed=3", f"out={out}",
                        "styles=[original,altstyle]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(read_puzzle_table(out / "puzzles.parquet")) == 2
    for jsonl in (out / "Original" / "testset_hr.jsonl",
                  out / "Altstyle" / "testset_altstyle.jsonl"):
        results = lint_jsonl(jsonl)
        assert [r.ok for r in results] == [True, True]
        assert len(list(jsonl.parent.rglob("*.png"))) == 2


@pytest.mark.slow
@pytest.mark.parametrize(("override", "message"), [
    ("n=-5", "crossmath.generate: n=-5: the number of puzzles must be an integer of at least 1"),
    ("difficulty=extreme", "crossmath.generate: difficulty='extreme': choose one of easy, medium, "
                           "hard, mixed"),
    ("styles=[original,no-such-style]", "crossmath.generate: unknown style 'no-such-style'; "
                                        "available styles: "),
])
def test_a_bad_option_is_one_line_before_any_work(tmp_path, override, message):
    out = tmp_path / "set"
    done = run_generate(override, f"out={out}", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(message)
    assert not out.exists(), "nothing is written for a bad option"


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "ten", None])
def test_count_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match=f"n={bad!r}"):
        check_count(bad)
    assert check_count(1) == 1


def test_difficulty_styles_and_generator_options_are_checked():
    assert [check_difficulty(d) for d in ("easy", "mixed")] == ["easy", "mixed"]
    for bad in ("Hard", "", None):
        with pytest.raises(ValueError, match="choose one of easy, medium, hard, mixed"):
            check_difficulty(bad)
    assert [s.name for s in check_styles("noborder")] == ["noborder"]  # one name, not a list
    assert check_styles([]) == []
    with pytest.raises(StyleError, match="available styles"):
        check_styles(["original", "nope"])
    cfg = OmegaConf.load(REPO_ROOT / "conf" / "generate.yaml")
    cfg.generator.operators = "+^"
    with pytest.raises(ValueError, match="^generator: operators"):
        GenerateSettings.from_config(cfg)
