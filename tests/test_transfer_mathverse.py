"""MathVerse testmini "Vision Only": loading the published parquet layout, prompts, scoring.

The fixture is written here, in the schema of ``AI4Math/MathVerse``'s ``testmini.parquet``
(images as the Hub's ``Image`` struct of PNG bytes and path), with one problem in all five
versions so that the Vision Only filter is exercised.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pyarrow as pa
import pytest

from crossmath.models.base import ModelRequest
from crossmath.models.baselines import RandomBackend
from crossmath.tasks import TaskDataError, get_task, summarize
from crossmath.tasks.mathverse.task import (
    CHOICE_INSTRUCTION,
    OPEN_INSTRUCTION,
    choice_gold,
    choice_options,
    letters_without_text,
)
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE, OPEN
from crossmath.tasks.transfer.tallies import Outcome
from tests.doubles import answer_key_replies
from tests.hub_files import png, write_parquet
from tests.transfer_fixtures import MATHVERSE_SCHEMA, MATHVERSE_VERSIONS

TASK = get_task("mathverse-vision")
SCHEMA = MATHVERSE_SCHEMA
VERSIONS = MATHVERSE_VERSIONS
ANGLE_QUESTION = ("As shown in the figure, AB parallel CD, angle 1 = 50.0, then angle 2 is ()\n"
                  "Choices:\nA:50°\nB:60°\nC:130°\nD:140°")


def row(sample: int, problem: int, version: str, *, answer: str, kind: str,
        question_for_eval: str = "", subject: str = "Plane Geometry", subfield: str = "Angle",
        image: bytes | None = None) -> dict:
    image = png(sample * 7 % 256) if image is None else image
    return {
        "sample_index": str(sample), "problem_index": str(problem), "problem_version": version,
        "question": "" if version == "Vision Only" else question_for_eval,
        "image": {"bytes": image, "path": f"images_version_6/image_{problem}.png"},
        "answer": answer, "question_type": kind,
        "metadata": {"split": "testmini", "source": "GeoQA", "subject": subject,
                     "subfield": subfield},
        "query_wo": "official prompt, unused", "query_cot": "official prompt, unused",
        "question_for_eval": question_for_eval,
    }


def fixture_rows() -> list[dict]:
    rows = [row(index + 1, 1, version, answer="C", kind="multi-choice",
                question_for_eval=ANGLE_QUESTION)
            for index, version in enumerate(VERSIONS)]
    rows.append(row(10, 2, "Vision Only", answer="14", kind="free-form",
                    question_for_eval="The radius is 3 cm and the height 13 cm. Find L.",
                    subject="Solid Geometry", subfield="Length"))
    rows.append(row(11, 2, "Text Lite", answer="14", kind="free-form"))
    rows.append(row(12, 3, "Vision Only", answer="B", kind="multi-choice",
                    question_for_eval="The options are visible only in the image.",
                    subject="Functions", subfield="Coordinate"))
    rows.append(row(13, 4, "Vision Only", answer="2\\sqrt{3}", kind="free-form",
                    subject="Plane Geometry", subfield="Length"))
    return rows


def write(path: Path, rows: list[dict], schema: pa.Schema = SCHEMA) -> Path:
    return write_parquet(path, rows, schema)


@pytest.fixture
def testmini(tmp_path: Path) -> Path:
    return write(tmp_path / "MathVerse" / "testmini.parquet", fixture_rows())


def test_only_vision_only_problems_are_loaded_with_their_image_and_our_prompt(testmini):
    items = TASK.load(testmini)
    assert [item.item_id for item in items] == ["5", "10", "12", "13"]
    by_id = {item.item_id: item for item in items}
    choice, free = by_id["5"], by_id["10"]
    assert choice.question_type == MULTIPLE_CHOICE and free.question_type == OPEN
    assert choice.prompt.texts == (CHOICE_INSTRUCTION,)
    assert free.prompt.texts == (OPEN_INSTRUCTION,)
    assert choice.prompt.images == (png(5 * 7),) and choice.prompt.image_at == (0,)
    assert choice.gold == ("C",) and free.gold == ("14",)
    assert choice.options == (("A", "50°"), ("B", "60°"), ("C", "130°"), ("D", "140°"))
    assert free.options == ()
    assert free.breakdown == {"subject": "Solid Geometry", "subfield": "Length",
                              "source": "GeoQA"}
    # the question itself never reaches the prompt: it is in the image only
    assert all("parallel" not in text for item in items for text in item.prompt.texts)


def test_a_folder_is_searched_for_testmini_parquet(testmini):
    assert [i.item_id for i in TASK.load(testmini.parent.parent)] == ["5", "10", "12", "13"]


def test_choices_only_in_the_image_give_letters_without_text(testmini):
    item = {i.item_id: i for i in TASK.load(testmini)}["12"]
    assert item.options == (("A", ""), ("B", ""), ("C", ""), ("D", ""))
    assert choice_options("no choices here") == ()
    assert letters_without_text(("F",))[-1] == ("F", "")
    # choices that do not include the gold letter are a format we do not read: letters only
    assert choice_gold("E", choice_options(ANGLE_QUESTION)) == ("E",)
    assert letters_without_text(("E",)) == tuple((c, "") for c in "ABCDE")


@pytest.mark.parametrize(("answer", "gold"), [
    ("C", ("C",)), ("(C)", ("C",)), (" C ", None),  # the loader strips; this reads as given
    ("C\nD", ("C", "D")), ("A, C", ("A", "C")),
    ("130°", ("C",)), ("130 °", ("C",)),  # an option's text, spaces aside
    ("130", None), ("B or C", None),
])
def test_published_multiple_choice_answers_become_gold_letters(answer, gold):
    assert choice_gold(answer, choice_options(ANGLE_QUESTION)) == gold


def test_inline_choices_without_a_header_are_read():
    question = ("Given the graph of the ellipse, determine its equation.A. \\frac{x^2}{81} + "
                "\\frac{y^2}{9} = 1 B. Can not determine.\n")
    assert choice_options(question) == (("A", "\\frac{x^2}{81} + \\frac{y^2}{9} = 1"),
                                        ("B", "Can not determine."))
    assert choice_options("Is angle A. or B the largest?") == ()  # no run from A to B


@pytest.mark.parametrize("question", [
    "Find x.\nChoice:\nA.5 cm\nB.5 m",
    "Find x.\nChoices:\n(A) 5 cm\n(B) 5 m\nAnswer with a letter.",
    "Find x. Choices: A:5 cm B:5 m",
])
def test_choice_lines_in_their_published_variants(question):
    assert choice_options(question) == (("A", "5 cm"), ("B", "5 m"))


def test_a_capital_inside_a_choice_is_part_of_its_text():
    question = "Which point?\nChoices:\nA:Point P. It lies on the circle\nB:Point Q."
    assert choice_options(question) == (("A", "Point P. It lies on the circle"),
                                        ("B", "Point Q."))


def test_content_keys_differ_between_items_and_survive_a_reload(testmini):
    first, second = TASK.load(testmini), TASK.load(testmini)
    assert [i.content_key for i in first] == [i.content_key for i in second]
    assert len({i.content_key for i in first}) == len(first)


def test_a_missing_column_names_the_file_and_the_column(tmp_path):
    schema = pa.schema([f for f in SCHEMA if f.name != "answer"])
    rows = [{k: v for k, v in r.items() if k != "answer"} for r in fixture_rows()]
    path = write(tmp_path / "testmini.parquet", rows, schema)
    with pytest.raises(TaskDataError, match=r"testmini\.parquet: missing column\(s\) 'answer'"):
        TASK.load(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"answer": "B or C"}, r"row 5, column 'answer': the multiple-choice answer 'B or C' is "
                           "neither option letters nor the text of one option"),
    ({"answer": "  "}, r"row 5, column 'answer': the answer is empty"),
    ({"question_type": "true-false"}, r"row 5, column 'question_type': unknown question type"),
    ({"image": None}, r"row 5, column 'image': a Vision Only problem needs its image"),
    ({"image": {"bytes": b"not a png", "path": "x.png"}}, r"column 'image': the image does not"),
    ({"metadata": None}, r"row 5, column 'metadata': expected a struct with a string 'subject'"),
])
def test_an_unreadable_row_is_skipped_and_named_in_one_warning(tmp_path, caplog, change,
                                                               message):
    rows = fixture_rows()
    rows[4] = {**rows[4], **change}  # the Vision Only version of problem 1, the file's row 5
    path = write(tmp_path / "testmini.parquet", rows)
    data = TASK.read(path)
    assert [item.item_id for item in data.items] == ["10", "12", "13"]
    assert len(data.skipped) == 1 and str(path) in data.skipped[0]
    assert re.search(message, data.skipped[0])
    with caplog.at_level(logging.WARNING):
        assert [item.item_id for item in TASK.load(path)] == ["10", "12", "13"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith(
        "task mathverse-vision: skipped 1 unreadable item(s): ")
    assert re.search(message, warned[0])


def test_a_file_whose_every_row_is_unreadable_stops_the_task(tmp_path):
    rows = [{**row, "answer": ""} for row in fixture_rows()]
    with pytest.raises(TaskDataError, match=r"no readable rows with problem_version='Vision "
                                            r"Only' .*\(4 unreadable: .*the answer is empty"):
        TASK.load(write(tmp_path / "testmini.parquet", rows))


def test_a_file_that_is_not_parquet_stops_the_task_at_the_door(tmp_path):
    broken = tmp_path / "testmini.parquet"
    broken.write_bytes(b"PAR1 but not really")
    with pytest.raises(TaskDataError, match=r"testmini\.parquet: not a readable parquet file"):
        TASK.load(broken)


def test_the_hubs_converted_layout_is_read_too(tmp_path):
    write(tmp_path / "testmini" / "testmini" / "0000.parquet", fixture_rows())
    write(tmp_path / "testmini_text_only" / "testmini_text_only" / "0000.parquet",
          fixture_rows()[:1])  # another config of the conversion: not read
    assert [i.item_id for i in TASK.load(tmp_path)] == ["5", "10", "12", "13"]


def test_an_image_given_by_path_only_is_read_beside_the_file(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "p.png").write_bytes(png(99))
    rows = [{**row(1, 1, "Vision Only", answer="7", kind="free-form"),
             "image": {"bytes": None, "path": "images/p.png"}}]
    item, = TASK.load(write(tmp_path / "testmini.parquet", rows))
    assert item.prompt.images == (png(99),)


def test_repeated_ids_and_files_without_vision_only_rows_are_errors(tmp_path):
    twice = fixture_rows() + [row(10, 9, "Vision Only", answer="1", kind="free-form")]
    with pytest.raises(TaskDataError, match=r"row 10: item id '10' repeats the one at .*row 6"):
        TASK.load(write(tmp_path / "a" / "testmini.parquet", twice))
    text_only = [r for r in fixture_rows() if r["problem_version"] != "Vision Only"]
    with pytest.raises(TaskDataError, match="no readable rows with problem_version='Vision Only'"):
        TASK.load(write(tmp_path / "b" / "testmini.parquet", text_only))


def test_a_path_that_does_not_exist_or_holds_no_testmini_is_an_error(tmp_path):
    with pytest.raises(TaskDataError, match="mathverse-vision: .* does not exist"):
        TASK.load(tmp_path / "nowhere")
    with pytest.raises(TaskDataError, match="no file matching 'testmini.parquet'"):
        TASK.load(tmp_path)


# ------------------------------------------------------------------ judging replies


@pytest.fixture
def items(testmini):
    return {item.item_id: item for item in TASK.load(testmini)}


@pytest.mark.parametrize(("output", "answer", "correct"), [
    ("Angle 1 and angle 2 are supplementary, so angle 2 = 180° - 50° = 130°.\n<answer>C</answer>",
     "C", True),
    ("Since AB ∥ CD, the co-interior angles sum to 180°. Therefore the answer is (C).", "C", True),
    ("... so $\\angle 2 = 130^\\circ$.\n\n**Answer: C**", "C", True),
    ("We get 130°, which is option C.\n\\boxed{C}", "C", True),
    ("<think>Is it B? 60 looks wrong.</think>The angle is 130°.\n<answer>130°</answer>", "C", True),
    ("Alternate angles are equal, so angle 2 = 50°.\n<answer>A</answer>", "A", False),
    ("<answer>E</answer>", None, False),  # not one of the question's letters
    ("The figure is unclear, I cannot determine the angle.", None, False),
    ("", None, False),
])
def test_multiple_choice_is_read_by_letter(items, output, answer, correct):
    judgement = TASK.judge(items["5"], output)
    assert (judgement.answer, judgement.correct) == (answer, correct)


@pytest.mark.parametrize(("output", "correct"), [
    ("The diagonal is √(13² + 6²) = √205 ≈ 14.32, rounded down: 14 cm.\n<answer>14</answer>",
     True),
    ("L = \\sqrt{205} \\approx 14.3\n\\boxed{14.3}", False),  # gold 14 is an integer: exact
    ("Rounding down gives the final answer: L = 14 cm.", True),
    ("By Pythagoras the straw is about 14 cm long", True),  # no marker: the last number
    ("<answer>13</answer>", False),
    ("<answer></answer>", False),
    ("I don't know.", False),
])
def test_free_form_is_judged_by_number(items, output, correct):
    assert TASK.judge(items["10"], output).correct is correct


@pytest.mark.parametrize(("output", "correct"), [
    ("<answer>2\\sqrt{3}</answer>", True),
    ("<answer>$2 \\sqrt 3$</answer>", True),
    ("<answer>\\sqrt{12}</answer>", True),
    ("The length is \\boxed{3.46}.", True),  # decimals: within the rounding they show
    ("<answer>3.4</answer>", False),
    ("<answer>2\\sqrt{2}</answer>", False),
])
def test_free_form_expressions_are_compared_by_value(items, output, correct):
    assert TASK.judge(items["13"], output).correct is correct


def test_answer_key_double_scores_every_item_and_chance_guesses_letters(items, tmp_path):
    replies = answer_key_replies(items.values(), tmp_path)
    judged = [TASK.judge(item, reply) for item, reply in zip(items.values(), replies)]
    assert all(j.correct for j in judged)
    summary = summarize(TASK.name, [Outcome.of(item, j) for item, j in zip(items.values(), judged)])
    assert summary.flat_metrics()["transfer/mathverse-vision/rule/acc"] == 100.0

    chance = [ModelRequest(f"r{i}", item.prompt, modality="image", options=item.letters)
              for i, item in enumerate(items.values())]
    guesses = RandomBackend().generate(chance)
    again = RandomBackend().generate(chance)
    assert [g.output for g in guesses] == [g.output for g in again]
    for item, guess in zip(items.values(), guesses):
        judgement = TASK.judge(item, guess.output)
        if item.question_type == MULTIPLE_CHOICE:
            assert judgement.answer in item.letters
        else:
            assert judgement.answer is None and not judgement.correct
