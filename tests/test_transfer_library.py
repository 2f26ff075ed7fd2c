"""The transfer task library as a whole: names, Hub downloads (faked: nothing is fetched),
content keys, items as rows, tallies, and a core free of Ray and torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from crossmath.models.base import Prompt
from crossmath.tasks import TASKS, TaskDataError, TaskItem, get_task, prompt_key, summarize
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE, OPEN
from crossmath.tasks.transfer.tallies import Outcome, TaskSummary, tally_by

TRANSFER_TASKS = ["mathverse-vision", "mmmu-val"]


def test_tasks_by_name():
    assert sorted(TASKS) == ["crossmath", *TRANSFER_TASKS]  # one registry, CrossMath in it
    assert get_task("mmmu-val").name == "mmmu-val"
    with pytest.raises(KeyError, match=r"unknown task 'mmmu'; known: \['crossmath', 'mathverse"):
        get_task("mmmu")


@pytest.mark.parametrize("name", TRANSFER_TASKS)
def test_without_a_path_and_offline_the_error_names_the_task_and_the_way_out(monkeypatch, name):
    import huggingface_hub

    def offline(**kwargs):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(TaskDataError) as caught:
        get_task(name).load()
    message = str(caught.value)
    assert f"task {name}: could not download" in message
    assert "ConnectionError: Failed to resolve" in message
    assert "Offline? Download it elsewhere and pass its local copy: task.path=" in message


def test_without_a_path_the_task_reads_what_the_hub_fetched(monkeypatch, tmp_path):
    import huggingface_hub

    from tests.test_transfer_mmmu import ACCOUNTING, write

    write(tmp_path / "Accounting" / "validation-00000-of-00001.parquet", ACCOUNTING)
    calls = []

    def fetched(**kwargs):
        calls.append(kwargs)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fetched)
    items = get_task("mmmu-val").load(cache_dir="/cache")
    assert [item.item_id for item in items] == ["validation_Accounting_1",
                                                "validation_Accounting_2"]
    assert calls == [{"repo_id": "MMMU/MMMU", "repo_type": "dataset",
                      "allow_patterns": ["*/validation-*.parquet"], "cache_dir": "/cache"}]


def test_prompt_key_hashes_every_part_and_where_images_stand():
    base = Prompt(("look at", "then answer"), (b"img-1",), (1,))
    assert prompt_key(base) == prompt_key(Prompt(("look at", "then answer"), (b"img-1",), (1,)))
    variants = [
        Prompt(("look at", "then answer!"), (b"img-1",), (1,)),  # wording
        Prompt(("look at", "then answer"), (b"img-2",), (1,)),  # image bytes
        Prompt(("look at", "then answer"), (b"img-1",), (0,)),  # image place
        Prompt(("look at then answer",), (b"img-1",), (1,)),  # text split differently
        Prompt(("look at", "then answer")),  # no image
    ]
    keys = {prompt_key(prompt) for prompt in [base, *variants]}
    assert len(keys) == 1 + len(variants)


def choice_item(item_id: str = "q1") -> TaskItem:
    return TaskItem(task="t", item_id=item_id, prompt=Prompt(("Q",), (b"png",), (0,)),
                    gold=("B",), question_type=MULTIPLE_CHOICE,
                    options=(("A", "1"), ("B", "2")), breakdown={"subject": "Math"})


def test_an_item_goes_through_an_arrow_table_and_back_unchanged():
    items = [choice_item(), TaskItem(task="t", item_id="q2", prompt=Prompt(("Q2",)),
                                     gold=("4", "4.0"), question_type=OPEN,
                                     breakdown={"subject": "Art"})]
    rows = pa.Table.from_pylist([item.to_row() for item in items]).to_pylist()
    again = [TaskItem.from_row(row) for row in rows]
    assert again == items
    assert [item.content_key for item in again] == [row["content_key"] for row in rows]


def test_items_refuse_a_gold_that_is_not_an_option_or_an_unknown_type():
    with pytest.raises(ValueError, match=r"gold \['E'\] is not among the option letters"):
        TaskItem(task="t", item_id="q", prompt=Prompt(("Q",)), gold=("E",),
                 question_type=MULTIPLE_CHOICE, options=(("A", ""), ("B", "")))
    with pytest.raises(ValueError, match="question type 'essay'"):
        TaskItem(task="t", item_id="q", prompt=Prompt(("Q",)), gold=("x",),
                 question_type="essay")  # type: ignore[arg-type]


def outcome(item_id: str, subject: str, question_type: str, correct: bool,
            answered: bool = True) -> Outcome:
    return Outcome(item_id, question_type, {"subject": subject}, correct, answered)


def test_accuracy_overall_per_subject_and_per_type_in_percent():
    outcomes = [outcome("1", "Math", OPEN, True), outcome("2", "Math", MULTIPLE_CHOICE, False),
                outcome("3", "Art", MULTIPLE_CHOICE, True),
                outcome("4", "Art", OPEN, False, answered=False)]
    summary = summarize("mmmu-val", outcomes)
    assert summary.overall.accuracy == 50.0 and summary.overall.answer_rate == 75.0
    assert summary.flat_metrics() == {
        "transfer/mmmu-val/rule/acc": 50.0, "transfer/mmmu-val/rule/answer_rate": 75.0,
        "transfer/mmmu-val/rule/subject/Art/acc": 50.0, "transfer/mmmu-val/rule/subject/Math/acc": 50.0,
        "transfer/mmmu-val/rule/type/multiple-choice/acc": 50.0,
        "transfer/mmmu-val/rule/type/open/acc": 50.0,
    }
    assert summarize("t", []).flat_metrics()["transfer/t/rule/acc"] == 0.0
    with pytest.raises(KeyError, match="outcome 1 has no field 'subfield'"):
        tally_by(outcomes, "subfield")


@pytest.mark.slow
def test_the_task_library_imports_neither_ray_nor_torch():
    code = ("import sys, crossmath.tasks; "
            "print([m for m in ('ray', 'torch', 'transformers', 'mlflow', 'huggingface_hub') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_a_summary_round_trips_through_json_and_names_are_fit_for_mlflow():
    outcomes = [outcome("1", "Algebra & Number (Theory)", OPEN, True),
                outcome("2", "Math", MULTIPLE_CHOICE, False)]
    summary = summarize("mmmu-val", outcomes)
    assert TaskSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary
    assert "transfer/mmmu-val/rule/subject/Algebra _ Number _Theory_/acc" in summary.flat_metrics()
