import json
import shutil
import subprocess
import sys

import pytest
from conftest import OFFICIAL_STYLES

from crossmath.puzzle.consistency import LintPathError, lint_jsonl, release_jsonl_files


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
    path = _corrupt(official_jsonl, tmp_path)
    results = lint_jsonl(path)
    flagged = {r.number: r for r in results if not r.ok}
    assert sorted(flagged) == [2, 4, 5, 7]
    assert flagged[2].status == "contradiction" and "solutions say" in flagged[2].describe()
    assert flagged[4].status == "mismatch" and "step labels" in flagged[4].describe()
    assert flagged[5].status == "ambiguous" and "several solutions" in flagged[5].describe()
    assert flagged[7].status == "unreadable" and "not valid JSON" in flagged[7].describe()
    # each line names the file and the line (the file starts with an empty line)
    assert flagged[7].describe().startswith(f"{path}:8: record 7 unreadable: ")
    assert flagged[2].describe().startswith(f"{path}:3: record 2 math_puzzle_")


def run_lint(path, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossmath.lint", f"path={path}"],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.slow
def test_lint_command_flags_lines_and_exits_1(official_jsonl, tmp_path):
    path = _corrupt(official_jsonl, tmp_path)
    run = run_lint(path, tmp_path)
    assert run.returncode == 1, run.stderr
    lines = run.stdout.strip().splitlines()
    assert [line.split(": record ")[0] for line in lines[:-1]] == [
        f"{path}:{n}" for n in (3, 5, 6, 8)]
    assert lines[1].startswith(f"{path}:5: record 4 ") and " mismatch: " in lines[1]
    assert lines[-1] == "12 records in 1 file: 8 ok, 4 flagged"
    assert not (tmp_path / "outputs").exists(), "lint must not leave Hydra output folders"


@pytest.mark.slow
def test_lint_command_passes_the_sample_folder_and_exits_0(official_sample, tmp_path):
    run = run_lint(official_sample, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "48 records in 4 files: 48 ok, 0 flagged"


@pytest.mark.slow
def test_a_folder_means_its_release_files_and_style_subfolders(official_sample, official_jsonl,
                                                               tmp_path):
    shutil.copytree(official_sample, tmp_path / "release")
    broken = tmp_path / "release" / "Beige" / OFFICIAL_STYLES["beige"][1]
    broken.write_text(_corrupt(official_jsonl, tmp_path).read_text(encoding="utf-8"),
                      encoding="utf-8")
    (tmp_path / "release" / "testset_extra.jsonl").write_text(
        official_jsonl.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    # not a testset file, so not read
    (tmp_path / "release" / "notes.jsonl").write_text("{broken\n", encoding="utf-8")
    assert release_jsonl_files(tmp_path / "release") == sorted(
        [tmp_path / "release" / folder / name for folder, name in OFFICIAL_STYLES.values()]
        + [tmp_path / "release" / "testset_extra.jsonl"])
    run = run_lint(tmp_path / "release", tmp_path)
    assert run.returncode == 1
    lines = run.stdout.strip().splitlines()
    assert all(line.startswith(f"{broken}:") for line in lines[:-1]) and len(lines) == 5
    assert lines[-1] == "49 records in 5 files: 45 ok, 4 flagged"


@pytest.mark.slow
@pytest.mark.parametrize("where", ["absent", "empty"])
def test_a_path_with_nothing_to_lint_is_one_clear_line(tmp_path, where):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LintPathError, match=where):
        release_jsonl_files(tmp_path / where)
    run = run_lint(tmp_path / where, tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"crossmath.lint: path: {tmp_path / where} "
        + ("does not exist" if where == "absent" else
           "holds no testset_*.jsonl, neither itself nor in a style subfolder "
           "(e.g. Original/testset_hr.jsonl)")]
