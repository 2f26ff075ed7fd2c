import json
import subprocess
import sys

import pytest
from conftest import OFFICIAL_STYLES

from crossmath.puzzle.consistency import lint_jsonl


def _sample_lines(official_jsonl):
    return [line for line in official_jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("style", sorted(OFFICIAL_STYLES))
def test_sample_records_all_pass(official_sample, style):
    folder, name = OFFICIAL_STYLES[style]
    results = lint_jsonl(official_sample / folder / name)
    assert len(results) == 12
    assert [r.describe() for r in results if not r.ok] == []


def _corrupt(official_jsonl, tmp_path):
    """The sample with four kinds of defect at records 2, 4, 5 and 7, and an empty line."""
    lines = _sample_lines(official_jsonl)
    records = [json.loads(line) for line in lines]
    # 2: an operator transcribed wrongly, as in the release's defective records.
    records[1]["markdown_table"] = records[1]["markdown_table"].replace("÷", "-", 1)
    # 4: a wrong step label.
    records[3]["markdown_answer_step"] = records[3]["markdown_answer_step"].replace("step1", "step2", 1)
    # 5: a grid with many solutions.
    records[4].update(
        markdown_table="| ? | + | ? | = | 5 |",
        markdown_answer="| 2 |   | 3 |   |   |",
        markdown_answer_step="| step1 |   | step1 |   |   |",
        solutions="Across\n2+3=5\n\nDown\n",
    )
    out = [json.dumps(r, ensure_ascii=False) for r in records]
    out[6] = "{broken"  # 7: not JSON at all
    path = tmp_path / "corrupt.jsonl"
    path.write_text("\n" + "\n".join(out) + "\n", encoding="utf-8")
    return path


def test_defects_are_flagged_with_reasons(official_jsonl, tmp_path):
    results = lint_jsonl(_corrupt(official_jsonl, tmp_path))
    flagged = {r.number: r for r in results if not r.ok}
    assert sorted(flagged) == [2, 4, 5, 7]
    assert flagged[2].status == "contradiction" and "solutions say" in flagged[2].describe()
    assert flagged[4].status == "mismatch" and "step labels" in flagged[4].describe()
    assert flagged[5].status == "ambiguous" and "several solutions" in flagged[5].describe()
    assert flagged[7].status == "unreadable" and "corrupt.jsonl:8" in flagged[7].describe()


def test_lint_command_prints_flagged_lines_and_summary(official_jsonl, tmp_path):
    path = _corrupt(official_jsonl, tmp_path)
    run = subprocess.run([sys.executable, "-m", "crossmath.lint", f"path={path}"],
                         capture_output=True, text=True, cwd=tmp_path, check=True)
    lines = run.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["2", "4", "5", "7"]
    assert lines[1].startswith("4 mismatch: ")
    assert lines[-1] == "12 records: 8 ok, 4 flagged"
    assert not (tmp_path / "outputs").exists(), "lint must not leave Hydra output folders"
