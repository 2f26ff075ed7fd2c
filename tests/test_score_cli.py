"""`python -m crossmath.score` on messy release-format logs of the shared sample.

The expected numbers come from a plain re-derivation of the release's definitions written
here (gold split off the raw ``markdown_answer`` cells), not from the code under test.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OFFICIAL_STYLES

from crossmath.metrics.answers import parse_release_line
from crossmath.metrics.release_logs import (
    ReleaseLogError,
    format_release_line,
    run_log_paths,
    score_release_logs,
)

KEYS = ("micro_acc", "macro_acc", "step1_correct_rate", "step2_correct_rate",
        "step3_correct_rate", "step4+_correct_rate")


def _cells(markdown: str) -> list[str]:
    return [cell.strip() for cell in markdown.split("|") if cell.strip()]


def straightforward_summary(data_path: Path, logs: list[Path]) -> dict[str, dict[str, float]]:
    """The release's metrics, derived plainly: one fraction per run, then mean/std in percent."""
    records = [json.loads(line) for line in data_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    per_run: dict[str, list[float]] = {key: [] for key in KEYS}
    for log in logs:
        lines = log.read_text(encoding="utf-8").splitlines()
        macro = micro = 0.0
        right = {"step1": 0, "step2": 0, "step3": 0, "step4+": 0}
        total = dict.fromkeys(right, 0)
        for record, line in zip(records, lines):
            gold = _cells(record["markdown_answer"])
            depth = [int(label.removeprefix("step")) for label in _cells(record["markdown_answer_step"])]
            text = line.strip()
            tagged = re.search(r"<answer>(.*?)</answer>", text, flags=re.IGNORECASE)
            if tagged:
                text = tagged.group(1)
            pred = text.replace(",", " ").replace("|", " ").split()
            hits = [i < len(pred) and pred[i] == g for i, g in enumerate(gold)]
            macro += pred == gold
            micro += sum(hits) / len(gold)
            for hit, d in zip(hits, depth):
                group = f"step{d}" if d < 4 else "step4+"
                total[group] += 1
                right[group] += hit
        per_run["macro_acc"].append(macro / len(records))
        per_run["micro_acc"].append(micro / len(records))
        for group in right:
            per_run[f"{group}_correct_rate"].append(right[group] / total[group] if total[group] else 0.0)
    return {key: {"mean": 100 * statistics.mean(v), "std": 100 * statistics.stdev(v) if len(v) > 1 else 0.0}
            for key, v in per_run.items()}


def assert_matches(summary: dict, expected: dict) -> None:
    assert list(summary) == list(KEYS)
    for key in KEYS:
        for stat in ("mean", "std"):
            assert summary[key][stat] == pytest.approx(expected[key][stat], abs=1e-6), (key, stat)


MESS = ("exact", "noisy", "short", "long", "none", "empty", "commas", "pipes", "tagged")


def write_messy_logs(data_path: Path, prefix: Path, k: int, seed: int) -> list[Path]:
    """k run logs with every kind of mess the release's logs carry, one line per puzzle."""
    records = [json.loads(line) for line in data_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    paths = []
    for run in range(1, k + 1):
        lines = []
        for index, record in enumerate(records):
            gold = _cells(record["markdown_answer"])
            kind = MESS[(index + run + seed) % len(MESS)]  # every kind in every log
            tokens = [t if rng.random() < 0.7 else str(rng.randint(0, 120)) for t in gold]
            lines.append({
                "exact": " ".join(gold),
                "noisy": " ".join(tokens),
                "short": " ".join(tokens[: rng.randint(0, len(tokens) - 1)]),
                "long": " ".join(gold + ["7"]),
                "none": "No Answer",
                "empty": "",
                "commas": ", ".join(tokens),
                "pipes": " | ".join(gold),
                "tagged": f"  <answer> {','.join(tokens)} </answer> ",
            }[kind])
        path = Path(f"{prefix}run_{run}.log")
        newline = "\r\n" if run % 2 else "\n"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write("".join(line + newline for line in lines))
        paths.append(path)
    return paths


def run_cli(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossmath.score", *overrides],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.slow
def test_cli_matches_the_release_definitions_on_messy_logs(official_jsonl: Path, tmp_path: Path) -> None:
    logs = write_messy_logs(official_jsonl, tmp_path / "qwen_text_", k=4, seed=1)
    result = run_cli(f"data={official_jsonl}", f"preds={tmp_path}/qwen_text_run_*.log", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert_matches(summary, straightforward_summary(official_jsonl, logs))
    assert 0 < summary["macro_acc"]["mean"] < 100  # the mess really mixes right and wrong
    assert "4 run(s) of 12 puzzles" in result.stdout
    assert not (tmp_path / "outputs").exists() and not (tmp_path / ".hydra").exists()


@pytest.mark.parametrize("style", sorted(OFFICIAL_STYLES))
def test_every_style_file_and_sample_count(official_sample: Path, style: str, tmp_path: Path) -> None:
    folder, name = OFFICIAL_STYLES[style]
    data = official_sample / folder / name
    for k in (1, 3):
        logs = write_messy_logs(data, tmp_path / f"{style}{k}_", k=k, seed=k + len(style))
        summary = score_release_logs(data, str(tmp_path / f"{style}{k}_run_*.log")).summary()
        assert_matches(summary, straightforward_summary(data, logs))


@pytest.mark.slow
def test_log_longer_than_the_data_names_file_and_line(official_jsonl: Path, tmp_path: Path) -> None:
    (log,) = write_messy_logs(official_jsonl, tmp_path / "x_", k=1, seed=2)
    log.write_text(log.read_text() + "1 2 3\n")
    result = run_cli(f"data={official_jsonl}", f"preds={log}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{log}:13: no puzzle for this line" in result.stderr


@pytest.mark.slow
def test_short_log_is_an_error_unless_partial_is_asked(official_jsonl: Path, tmp_path: Path) -> None:
    (log,) = write_messy_logs(official_jsonl, tmp_path / "x_", k=1, seed=3)
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:7]))
    with pytest.raises(ReleaseLogError, match=r"x_run_1.log: 7 lines for 12 puzzles.*line 8 \(puzzle math_puzzle_\d+"):
        score_release_logs(official_jsonl, str(log))
    # The release scores such a log on the puzzles it covers; allow_partial does the same.
    data = tmp_path / "first7.jsonl"
    data.write_text("".join(official_jsonl.read_text(encoding="utf-8").splitlines(keepends=True)[:7]), encoding="utf-8")
    partial = score_release_logs(official_jsonl, str(log), allow_partial=True).summary()
    assert_matches(partial, straightforward_summary(data, [log]))
    result = run_cli(f"data={official_jsonl}", f"preds={log}", "allow_partial=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_unreadable_inputs_are_named(official_jsonl: Path, tmp_path: Path) -> None:
    result = run_cli(f"data={official_jsonl}", f"preds={tmp_path}/nothing_run_*.log", cwd=tmp_path)
    assert result.returncode == 2 and "no prediction log matches" in result.stderr
    bad = tmp_path / "bad_run_1.log"
    bad.write_bytes(b"1 2\n3 \xff 4\n")
    with pytest.raises(ReleaseLogError, match=r"bad_run_1.log:2: not valid UTF-8"):
        score_release_logs(official_jsonl, str(bad))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(official_jsonl.read_text(encoding="utf-8").replace('"markdown_answer_step"', '"other"', 1),
                      encoding="utf-8")
    (log,) = write_messy_logs(official_jsonl, tmp_path / "y_", k=1, seed=4)
    result = run_cli(f"data={broken}", f"preds={log}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{broken}:1, field 'markdown_answer_step'" in result.stderr


def test_run_files_are_taken_in_run_order(tmp_path: Path) -> None:
    for run in (1, 2, 10):
        (tmp_path / f"p_run_{run}.log").write_text("")
    assert [p.name for p in run_log_paths(str(tmp_path / "p_run_*.log"))] == ["p_run_1.log", "p_run_2.log", "p_run_10.log"]


def test_release_lines_round_trip() -> None:
    assert format_release_line(None) == "No Answer" and parse_release_line("No Answer\n") is None
    assert parse_release_line(format_release_line(["12", "7"]) + "\n") == ["12", "7"]
    assert parse_release_line("\n") == []
    assert parse_release_line("<ANSWER>1,2</answer> 3") == ["1", "2"]


@pytest.mark.slow
def test_save_json_keeps_every_run(official_jsonl: Path, tmp_path: Path) -> None:
    write_messy_logs(official_jsonl, tmp_path / "z_", k=2, seed=5)
    out = tmp_path / "summary.json"
    result = run_cli(f"data={official_jsonl}", f"preds={tmp_path}/z_run_*.log", f"save_json={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    full = json.loads(out.read_text())
    assert full["num_runs"] == 2 and full["num_examples"] == 12
    assert [Path(run["file"]).name for run in full["per_run"]] == ["z_run_1.log", "z_run_2.log"]
    last = json.loads(result.stdout.strip().splitlines()[-1])
    mean = statistics.mean(run["macro_acc"] for run in full["per_run"]) * 100
    assert last["macro_acc"]["mean"] == pytest.approx(mean)
    assert set(full["per_difficulty"]) == {"easy", "medium", "hard"}
