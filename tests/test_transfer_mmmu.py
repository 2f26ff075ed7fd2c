"""MMMU validation: the per-subject parquet layout, interleaved multi-image prompts, MMMU's
rule-based open-answer matching, deterministic scoring of unparsable replies.

The fixture is written here in the schema of ``MMMU/MMMU`` (``<Subject>/validation-*.parquet``,
``options`` as a Python-literal string, ``image_1`` .. ``image_7`` as ``Image`` structs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossmath.tasks import TaskDataError, get_task, summarize
from crossmath.tasks.mmmu.open import candidates, key_responses
from crossmath.tasks.mmmu.task import CHOICE_INSTRUCTION, OPEN_INSTRUCTION
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE, OPEN
from crossmath.tasks.transfer.tallies import Outcome
from tests.doubles import answer_key_replies
from tests.hub_files import png, write_parquet
from tests.transfer_fixtures import MMMU_SCHEMA

TASK = get_task("mmmu-val")
SCHEMA = MMMU_SCHEMA


def row(item_id: str, question: str, *, options: str = "[]", answer: str,
        kind: str = "multiple-choice", images: dict[int, bytes] | None = None,
        subfield: str = "Financial Accounting") -> dict:
    images = {1: png(10)} if images is None else images
    return {
        "id": item_id, "question": question, "options": options, "explanation": "",
        **{f"image_{n}": ({"bytes": images[n], "path": f"{item_id}_{n}.png"}
                          if n in images else None) for n in range(1, 8)},
        "img_type": "['Tables']", "answer": answer, "topic_difficulty": "Medium",
        "question_type": kind, "subfield": subfield,
    }


ACCOUNTING = [
    row("validation_Accounting_1", "<image 1> What is the gross margin of the firm?",
        options="['20%', '25%', '30%', '35%']", answer="B"),
    row("validation_Accounting_2", "Compute the total liabilities (in $) from <image 1>.",
        answer="1,250", kind="open"),
]
MATH = [
    row("validation_Math_3", "Which graph shows f(x) = x^2?",
        options="['<image 1>', '<image 2>', '<image 3>']", answer="C",
        images={1: png(20), 2: png(30), 3: png(40)}, subfield="Calculus"),
    row("validation_Math_4", "Compare <image 1> with <image 2>. By what factor is the "
        "area of the second triangle larger? Look again at <image 1>.",
        answer="['4', '4.0']", kind="open", images={1: png(50), 2: png(60)},
        subfield="Geometry"),
]
ART_THEORY = [
    row("validation_Art_Theory_5", "Who painted this work?", answer="Claude Monet",
        kind="open", images={1: png(70), 2: png(80)}, subfield="Art History"),
]


def write(path: Path, rows: list[dict]) -> Path:
    return write_parquet(path, rows, SCHEMA)


@pytest.fixture
def mmmu(tmp_path: Path) -> Path:
    root = tmp_path / "MMMU"
    for subject, rows in (("Accounting", ACCOUNTING), ("Math", MATH), ("Art_Theory", ART_THEORY)):
        write(root / subject / "validation-00000-of-00001.parquet", rows)
        write(root / subject / "dev-00000-of-00001.parquet", [])  # other splits are ignored
    return root


@pytest.fixture
def items(mmmu):
    return {item.item_id.rsplit("_", 1)[1]: item for item in TASK.load(mmmu)}


def test_every_subject_folder_is_read_with_subject_and_discipline(mmmu):
    items = TASK.load(mmmu)
    assert [item.item_id for item in items] == [
        "validation_Accounting_1", "validation_Accounting_2", "validation_Art_Theory_5",
        "validation_Math_3", "validation_Math_4"]
    first = items[0]
    assert first.breakdown == {"subject": "Accounting", "discipline": "Business",
                               "subfield": "Financial Accounting", "topic_difficulty": "Medium",
                               "img_type": ("Tables",)}
    assert items[2].breakdown["discipline"] == "Art and Design"
    assert {item.question_type for item in items} == {MULTIPLE_CHOICE, OPEN}


def test_options_are_listed_by_letter_and_the_image_stands_where_the_question_says(items):
    item = items["1"]
    assert item.options == (("A", "20%"), ("B", "25%"), ("C", "30%"), ("D", "35%"))
    assert item.prompt.texts == (
        "What is the gross margin of the firm?\n\nA. 20%\nB. 25%\nC. 30%\nD. 35%\n\n"
        + CHOICE_INSTRUCTION,)
    assert item.prompt.images == (png(10),) and item.prompt.image_at == (0,)
    assert items["2"].prompt.texts == ("Compute the total liabilities (in $) from",
                                       ".\n\n" + OPEN_INSTRUCTION)
    assert items["2"].prompt.image_at == (1,)


def test_images_named_in_the_options_stand_inside_the_option_list(items):
    prompt = items["3"].prompt
    assert prompt.texts == ("Which graph shows f(x) = x^2?\n\nA.", "B.", "C.",
                            CHOICE_INSTRUCTION)
    assert prompt.images == (png(20), png(30), png(40))
    assert prompt.image_at == (1, 2, 3)


def test_an_image_named_twice_is_shown_at_both_places(items):
    prompt = items["4"].prompt
    assert prompt.texts[0] == "Compare"
    assert prompt.images == (png(50), png(60), png(50))
    assert prompt.image_at == (1, 2, 3)
    assert items["4"].gold == ("4", "4.0")


def test_an_image_the_text_never_names_stands_first(items):
    prompt = items["5"].prompt
    assert prompt.images == (png(70), png(80)) and prompt.image_at == (0, 0)


def test_one_parquet_file_is_a_valid_path(mmmu):
    ids = [item.item_id for item in
           TASK.load(mmmu / "Math" / "validation-00000-of-00001.parquet")]
    assert ids == ["validation_Math_3", "validation_Math_4"]


@pytest.mark.parametrize(("change", "message"), [
    ({"options": "['20%', '25%'"}, r"row 1, column 'options': expected a Python-literal list"),
    ({"options": "[1, 2]"}, r"column 'options': expected a Python-literal list of strings"),
    ({"answer": "E"}, r"row 1, column 'answer': the answer \['E'\] is not among the option"),
    ({"answer": ""}, r"row 1, column 'answer': empty answer"),
    ({"answer": "[]", "question_type": "open"}, r"row 1, column 'answer': empty answer in '\[\]'"),
    ({"question": "Compare <image 1> and <image 3>."},
     r"row 1, column 'image_3': the text names <image 3>, which the row does not have"),
    ({"question_type": "short-answer"}, r"column 'question_type': unknown question type"),
    ({"id": "validation_Alchemy_1"}, r"column 'id': 'validation_Alchemy_1' is not"),
    ({"image_1": {"bytes": b"\x89PNG broken", "path": "a.png"}},
     r"column 'image_1': the image does not decode"),
])
def test_an_unreadable_row_is_skipped_naming_file_row_and_column(tmp_path, change, message):
    path = write(tmp_path / "Accounting" / "validation-00000-of-00001.parquet",
                 [{**ACCOUNTING[0], **change}, ACCOUNTING[1]])
    data = TASK.read(tmp_path)
    assert [item.item_id for item in data.items] == ["validation_Accounting_2"]
    skipped, = data.skipped
    assert str(path) in skipped and re.search(message, skipped)
    assert data.warning() == f"task mmmu-val: skipped 1 unreadable item(s): {skipped}"


def test_a_tag_beyond_the_rows_image_columns_stays_as_text(tmp_path):
    """validation_Math_7's options name images 7 to 30; a row has seven image columns."""
    question = {**MATH[0], "options": "['<image 1>', '<image 2>, <image 9>', '<image 3>']"}
    write(tmp_path / "Math" / "validation-00000-of-00001.parquet", [question])
    item, = TASK.load(tmp_path)
    assert item.prompt.texts[2] == ", <image 9>\nC." and len(item.prompt.images) == 3


@pytest.mark.parametrize(("answer", "gold"), [
    ("['24/7', '3.429']", ("24/7", "3.429")),
    ("[Tampa, Florida]", ("Tampa", "Florida")),  # not a Python literal: split at commas
    ("['$MgS$', 'MgS']", ("$MgS$", "MgS")),
    ("[4, 4.0]", ("4", "4.0")),
    ("1,250", ("1,250",)),
])
def test_list_golds_are_read_robustly(tmp_path, answer, gold):
    write(tmp_path / "Accounting" / "validation-00000-of-00001.parquet",
          [{**ACCOUNTING[1], "answer": answer}])
    assert TASK.load(tmp_path)[0].gold == gold


def test_image_types_are_groups_of_their_own(tmp_path):
    rows = [{**ACCOUNTING[0], "img_type": "['Tables', 'Photographs']"},
            {**ACCOUNTING[1], "img_type": "Diagrams"}]
    write(tmp_path / "Accounting" / "validation-00000-of-00001.parquet", rows)
    items = TASK.load(tmp_path)
    assert [item.breakdown["img_type"] for item in items] == [("Tables", "Photographs"),
                                                              ("Diagrams",)]
    outcomes = [Outcome.of(item, TASK.judge(item, "<answer>B</answer>")) for item in items]
    groups = summarize(TASK.name, outcomes, fields=("img_type",)).groups["img_type"]
    assert {value: (t.n, t.correct) for value, t in groups.items()} == {
        "Diagrams": (1, 0), "Photographs": (1, 1), "Tables": (1, 1)}


def test_the_hubs_converted_layout_is_read_too(tmp_path):
    write(tmp_path / "Accounting" / "validation" / "0000.parquet", ACCOUNTING)
    write(tmp_path / "Accounting" / "dev" / "0000.parquet", MATH)  # another split: not read
    assert [item.item_id for item in TASK.load(tmp_path)] == ["validation_Accounting_1",
                                                              "validation_Accounting_2"]


def test_a_missing_image_column_names_the_file_and_the_column(tmp_path):
    path = tmp_path / "validation-00000-of-00001.parquet"
    table = pa.Table.from_pylist(ACCOUNTING, schema=SCHEMA).drop_columns(["image_7"])
    pq.write_table(table, path)
    with pytest.raises(TaskDataError, match=r"validation-00000-of-00001\.parquet: missing "
                                            r"column\(s\) 'image_7'"):
        TASK.load(path)


# ------------------------------------------------------------------ judging replies


@pytest.mark.parametrize(("output", "answer", "correct"), [
    ("Gross margin = (400 - 300) / 400 = 25%.\n<answer>B</answer>", "B", True),
    ("The gross profit is 100 on sales of 400, i.e. 25%. The answer is B.", "B", True),
    ("(B) 25%", "B", True),
    ("<answer>25%</answer>", "B", True),  # the option's text, not its letter
    ("I'd go with option D.", "D", False),
    ("The margin cannot be read from the table.", None, False),  # MMMU would pick at random
    ("<answer>F</answer>", None, False),
])
def test_multiple_choice_replies(items, output, answer, correct):
    judgement = TASK.judge(items["1"], output)
    assert (judgement.answer, judgement.correct) == (answer, correct)


def test_an_unparsable_reply_scores_the_same_every_time(items):
    output = "Hmm, hard to say."
    assert {TASK.judge(items["1"], output) for _ in range(20)} == {TASK.judge(items["1"], output)}


@pytest.mark.parametrize(("output", "correct"), [
    ("Total liabilities are 1,250 dollars.\n<answer>1250</answer>", True),
    ("<answer>$1,250</answer>", True),
    ("Current liabilities 800 plus long-term 450.\nSo the total is 1250.00", True),
    ("Adding them: 800 + 450 = 1250", True),
    ("<answer>1,205</answer>", False),
    ("The liabilities total one thousand two hundred fifty.", False),
    ("", False),
])
def test_open_numbers_by_mmmu_rules(items, output, correct):
    assert TASK.judge(items["2"], output).correct is correct


@pytest.mark.parametrize(("output", "correct"), [
    ("The brushwork and light suggest Impressionism; the painter is Claude Monet.", True),
    ("<answer>claude monet</answer>", True),
    ("<answer>Monet</answer>", False),  # MMMU needs the gold inside the answer
    ("It was painted by Édouard Manet.", False),
])
def test_open_text_by_mmmu_rules(items, output, correct):
    assert TASK.judge(items["5"], output).correct is correct


def test_any_of_several_gold_answers_counts(items):
    assert TASK.judge(items["4"], "<answer>4</answer>").correct
    assert not TASK.judge(items["4"], "<answer>2</answer>").correct


def test_key_responses_take_the_shortest_tail_per_line_and_the_equation_in_the_last():
    response = "The area is 12 so the ratio is 3.\nThus x = 4"
    assert key_responses(response) == ["3.", "4"]
    assert key_responses("no indicator here") == ["no indicator here"]
    assert candidates(["the total is 1,250.5", "a"]) == ["the total is 1,250.5", " a", "a ",
                                                        1250.5]


def test_answer_key_double_scores_every_item_and_summary_breaks_down(items, tmp_path):
    replies = answer_key_replies(items.values(), tmp_path)
    outcomes = [Outcome.of(item, TASK.judge(item, reply))
                for item, reply in zip(items.values(), replies)]
    assert all(outcome.correct for outcome in outcomes)

    wrong = [Outcome.of(item, TASK.judge(item, "no idea")) for item in items.values()]
    metrics = summarize(TASK.name, outcomes[:3] + wrong[3:],
                        fields=("subject", "discipline", "question_type")).flat_metrics()
    order = [item.breakdown["subject"] for item in items.values()]
    assert order == ["Accounting", "Accounting", "Art_Theory", "Math", "Math"]
    assert metrics["transfer/mmmu-val/rule/acc"] == 60.0
    assert metrics["transfer/mmmu-val/rule/subject/Accounting/acc"] == 100.0
    assert metrics["transfer/mmmu-val/rule/subject/Math/acc"] == 0.0
    assert metrics["transfer/mmmu-val/rule/discipline/Art and Design/acc"] == 100.0
    assert metrics["transfer/mmmu-val/rule/type/open/acc"] == pytest.approx(200 / 3)
