"""The transfer tasks on their real published answers: every MathVerse testmini problem and
every MMMU validation question loads from files in the published layouts (and the Hub's
converted one), the answer-key double scores 100% under ``rule``, and the ``official`` MMMU
scoring reproduces MMMU's own script on the same replies (tests/golden/mmmu_official.json,
written by tests/golden/make_mmmu_official_verdicts.py from MMMU's eval_utils.py).

The layouts are built once per session from tests/fixtures (real ids, types, golds, choices
and option texts; stand-in images and question texts): see tests/transfer_fixtures.py.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from crossmath.tasks import Reply, get_task, score_replies, summarize
from crossmath.tasks.mmmu.official import parse_open
from crossmath.tasks.transfer.freeform import MISDECODED_DEGREE, read_answer
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE, OPEN
from crossmath.tasks.transfer.scorings import EXPECTED_ACC, RANDOM_PICKS
from crossmath.tasks.transfer.tallies import Outcome
from tests.doubles import answer_key_replies
from tests.transfer_fixtures import (
    CONVERTED,
    HUB,
    answer_key,
    mathverse_problems,
    vision_only_index,
    write_mathverse,
    write_mmmu,
)

MATHVERSE = get_task("mathverse-vision")
MMMU = get_task("mmmu-val")
GOLDEN = json.loads((Path(__file__).parent / "golden" / "mmmu_official.json")
                    .read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def mathverse_items(tmp_path_factory):
    """The 788 problems as loaded from each layout."""
    root = tmp_path_factory.mktemp("published")
    return {layout: MATHVERSE.read(write_mathverse(root / f"MathVerse-{layout}", layout))
            for layout in (HUB, CONVERTED)}


@pytest.fixture(scope="session")
def mmmu_items(tmp_path_factory):
    """The 900 questions as loaded from each layout."""
    root = tmp_path_factory.mktemp("published")
    return {layout: MMMU.read(write_mmmu(root / f"MMMU-{layout}", layout))
            for layout in (HUB, CONVERTED)}


def by_problem(items) -> dict[str, object]:
    ids = {vision_only_index(problem): problem["problem_index"] for problem in mathverse_problems()}
    return {ids[item.item_id]: item for item in items}


# ------------------------------------------------------------------ MathVerse


def test_every_mathverse_problem_loads_from_both_layouts(mathverse_items):
    hub, converted = mathverse_items[HUB], mathverse_items[CONVERTED]
    assert len(hub.items) == 788 and not hub.skipped
    assert [item.to_row() for item in converted.items] == [item.to_row() for item in hub.items]
    assert sorted(item.item_id for item in hub.items) == sorted(
        vision_only_index(problem) for problem in mathverse_problems())
    assert Counter(item.question_type for item in hub.items) == {MULTIPLE_CHOICE: 436, OPEN: 352}
    assert Counter(item.breakdown["subject"] for item in hub.items) == {
        "Plane Geometry": 510, "Functions": 159, "Solid Geometry": 119}


def test_multiple_choice_golds_published_in_other_forms_become_letters(mathverse_items):
    items = by_problem(mathverse_items[HUB].items)
    published = {problem["problem_index"]: problem["answer"] for problem in mathverse_problems()
                 if problem["question_type"] == "multi-choice"}
    kinds = Counter("letter" if re.fullmatch(r"[A-Z]", answer) else
                    "bracketed" if re.fullmatch(r"\([A-Z]\)", answer) else
                    "several" if "\n" in answer else "option text"
                    for answer in published.values())
    assert kinds == {"letter": 426, "bracketed": 4, "option text": 4, "several": 2}
    assert {p: items[p].gold for p in ("339", "340", "429", "430", "440", "555", "517", "518",
                                       "521", "523")} == {
        "339": ("A",), "340": ("A",),  # 090^\circ T, 053 ^\circ T: option A's text
        "429": ("B",), "430": ("A",),  # False: option B, then option A
        "440": ("C", "D"), "555": ("A", "C"),  # C\nD, A\nC: both must be chosen
        "517": ("C",), "518": ("C",), "521": ("B",), "523": ("B",)}  # (C), (B)
    assert items["440"].several_correct and not items["339"].several_correct
    assert all(item.official_fields["answer"] == published[p]
               for p, item in items.items() if p in published)


def test_every_multiple_choice_problem_has_its_choices_with_their_texts(mathverse_items):
    items = by_problem(mathverse_items[HUB].items)
    for problem in mathverse_problems():
        if "choices" not in problem:
            continue
        item = items[problem["problem_index"]]
        marked = [line for line in problem["choices"].split("\n")[1:]
                  if re.match(r"^\(?[A-Z]\s*[:.)]", line)]
        assert item.letters == tuple("ABCDEFGH"[:len(marked)]), problem["problem_index"]
        written = [bool(re.sub(r"^\(?[A-Z]\s*[:.)]", "", line).strip()) for line in marked]
        assert [bool(text) for _, text in item.options] == written, problem["problem_index"]
        assert set(item.gold) <= set(item.letters)


def test_how_many_free_form_golds_need_which_normalisation(mathverse_items):
    """The counts docs/transfer.md gives: what the rule has to see through in the golds."""
    golds = [item.gold[0] for item in mathverse_items[HUB].items if item.question_type == OPEN]
    kinds: Counter = Counter()
    for gold in golds:
        reading = read_answer(gold)
        unit = None if reading.unit is None else reading.unit.kind
        kinds["Word = value"] += reading.left_is_words
        kinds["variable, function or point ="] += (reading.left is not None
                                                   and not reading.left_is_words)
        kinds["length, area or volume unit"] += unit not in (None, "deg", "other")
        kinds["degrees"] += unit == "deg"
        kinds["unit only dropped"] += unit == "other"
        kinds["mis-decoded degree sign"] += MISDECODED_DEGREE in gold
        kinds["LaTeX number"] += reading.value is not None and "\\" in reading.right
        kinds["not a number"] += reading.value is None
    assert len(golds) == 352
    assert dict(kinds) == {
        "Word = value": 83, "variable, function or point =": 28,
        "length, area or volume unit": 115, "degrees": 16, "unit only dropped": 17,
        "mis-decoded degree sign": 2, "LaTeX number": 32, "not a number": 87}


def test_the_answer_key_scores_every_mathverse_problem_by_rule(mathverse_items, tmp_path):
    items = mathverse_items[HUB].items
    replies = answer_key_replies(items, tmp_path, answer_key(items))
    outcomes = [Outcome.of(item, MATHVERSE.judge(item, reply))
                for item, reply in zip(items, replies)]
    summary = summarize(MATHVERSE.name, outcomes, fields=("subject", "question_type"))
    assert (summary.overall.n, summary.overall.accuracy, summary.overall.answer_rate) == \
        (788, 100.0, 100.0)
    # the bare value our prompt asks for, not the published Word = value unit text
    assert answer_key(items)[vision_only_index({"problem_index": "393"})] == "113.1"


# ------------------------------------------------------------------ MMMU


def test_every_mmmu_question_loads_from_both_layouts(mmmu_items):
    hub, converted = mmmu_items[HUB], mmmu_items[CONVERTED]
    assert len(hub.items) == 900 and not hub.skipped
    assert [item.to_row() for item in converted.items] == [item.to_row() for item in hub.items]
    assert Counter(item.question_type for item in hub.items) == {MULTIPLE_CHOICE: 847, OPEN: 53}
    assert Counter(item.breakdown["subject"] for item in hub.items) == {
        subject: 30 for subject in GOLDEN["subject_order"]}
    golds = {item.item_id: item.gold for item in hub.items if len(item.gold) > 1}
    assert golds == {"validation_Chemistry_30": ("$MgS$", "MgS"),
                     "validation_Geography_4": ("Tampa", "Florida"),
                     "validation_Math_15": ("24/7", "3.429")}
    assert Counter(len(item.letters) for item in hub.items if item.letters) == {
        4: 606, 3: 111, 5: 91, 2: 28, 6: 5, 9: 4, 7: 2}


def test_image_types_are_tallied_by_each_type_of_the_list(mmmu_items):
    items = mmmu_items[HUB].items
    outcomes = [Outcome.of(item, MMMU.judge(item, "no idea")) for item in items]
    groups = summarize(MMMU.name, outcomes, fields=("img_type",)).groups["img_type"]
    assert sorted(groups) == ["Chemical Structures", "Diagrams", "Paintings", "Photographs",
                              "Plots and Charts", "Tables"]
    assert groups["Diagrams"].n == 360 and groups["Paintings"].n == 180


@pytest.fixture(scope="session")
def mmmu_answer_key(mmmu_items, tmp_path_factory):
    items = mmmu_items[HUB].items
    replies = answer_key_replies(items, tmp_path_factory.mktemp("key"), answer_key(items))
    return [Reply(item, 0, reply) for item, reply in zip(items, replies)]


def test_the_answer_key_scores_every_mmmu_question_by_rule(mmmu_answer_key):
    scores = score_replies(MMMU, mmmu_answer_key, ("subject", "question_type"))
    assert (scores.rule.overall.n, scores.rule.overall.accuracy,
            scores.rule.overall.answer_rate) == (900, 100.0, 100.0)


def test_official_mmmu_reproduces_mmmus_own_script_on_the_answer_key(mmmu_answer_key):
    """The tagged letters are no form MMMU's parser reads (``<answer>B</answer>``: no "(B)",
    no " B ", five words): every multiple-choice verdict is its seeded random pick, so this
    pins the picks' order too."""
    golden = GOLDEN["runs"]["answer_key"]
    scores = score_replies(MMMU, mmmu_answer_key, ("subject", "question_type"))
    verdicts = MMMU.official(mmmu_answer_key)
    for reply, verdict in zip(mmmu_answer_key, verdicts):
        expected = golden["items"][reply.item.item_id]
        parsed = (verdict.answer if reply.item.question_type == MULTIPLE_CHOICE
                  else sorted(map(repr, parse_open(reply.output))))
        assert (parsed, verdict.correct) == (expected["pred"], expected["correct"]), \
            reply.item.item_id
    assert scores.official.overall.accuracy == pytest.approx(100 * golden["acc"])
    # the score to expect over the random picks: 1/k for each, every open verdict as it is
    choices = [reply.item for reply in mmmu_answer_key if reply.item.letters]
    open_right = sum(golden["items"][reply.item.item_id]["correct"]
                     for reply in mmmu_answer_key if not reply.item.letters)
    assert scores.notes[RANDOM_PICKS] == len(choices) == 847
    assert scores.notes[EXPECTED_ACC] == pytest.approx(
        100 * (sum(1 / len(item.letters) for item in choices) + open_right) / 900)
