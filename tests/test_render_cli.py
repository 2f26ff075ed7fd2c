"""``python -m crossmath.render`` and ``write_release_images``: the release's folder layout."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import OFFICIAL_STYLES, REPO_ROOT

from crossmath.drawing import available_styles, load_style, render_puzzle_png
from crossmath.drawing.release_files import ReleasePathError, write_release_images
from crossmath.puzzle.records import read_official_jsonl, record_fields


def run_render(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossmath.render", *overrides], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_writes_every_record_at_its_release_path(official_sample, tmp_path):
    folder, jsonl = OFFICIAL_STYLES["noborder"]
    source = official_sample / folder / jsonl
    done = run_render(f"path={source}", "style=noborder", f"out={tmp_path}", "solved=true")
    assert done.returncode == 0, done.stderr
    records = read_official_jsonl(source)
    style = load_style("noborder")
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    assert written == sorted([r.fields["img_blank"] for r in records]
                             + [r.fields["img"] for r in records])
    for record in records:
        puzzle = record.to_puzzle()
        blank = (tmp_path / record.fields["img_blank"]).read_bytes()
        assert blank == render_puzzle_png(puzzle.grid, style)
        assert (tmp_path / record.fields["img"]).read_bytes() == render_puzzle_png(
            puzzle.grid, style, puzzle.solution)
    assert f"{len(written)} noborder images" in done.stdout


@pytest.mark.slow
def test_cli_unknown_style_lists_the_available_ones(official_jsonl, tmp_path):
    done = run_render(f"path={official_jsonl}", "style=no-such-style", f"out={tmp_path}")
    assert done.returncode != 0
    for name in available_styles():
        assert name in done.stderr
    assert not any(tmp_path.iterdir())


def test_generated_puzzles_go_to_the_style_layout(official_jsonl, tmp_path):
    """What ``crossmath.generate`` does per style: records in the style's layout, then images."""
    style = load_style("altstyle")
    puzzles = [record.to_puzzle() for record in read_official_jsonl(official_jsonl)[:2]]
    records = [record_fields(p, style.layout, p.name) for p in puzzles]
    assert write_release_images(puzzles, records, style, tmp_path) == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == [
        f"test_images_blank_altstyle/{p.name}_blank_altstyle.png" for p in puzzles]


@pytest.mark.parametrize("bad", ["../outside.png", "/tmp/absolute.png", ""])
def test_image_paths_must_stay_inside_the_output(official_jsonl, tmp_path, bad):
    first, second = read_official_jsonl(official_jsonl)[:2]
    records = [first.fields, {**second.fields, "img_blank": bad}]
    with pytest.raises(ReleasePathError, match="in.jsonl: record 2, field 'img_blank'"):
        write_release_images([first.to_puzzle(), second.to_puzzle()], records,
                             load_style("original"), tmp_path, source="in.jsonl")
    assert not any(tmp_path.iterdir()), "nothing is written before every path is checked"
