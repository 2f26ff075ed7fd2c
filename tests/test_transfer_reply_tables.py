"""Realistic replies of our own to real items (tests/fixtures/*_replies.jsonl) pin what each
scoring decides: chain-of-thought endings, boxed answers, lower case, option text, units,
LaTeX, restated options, True/False words, list golds.

- MMMU: ``rule`` and ``official`` verdicts, the official ones as MMMU's own script gives them
  (tests/golden/mmmu_official.json), and how often the two disagree;
- MathVerse: ``rule`` verdicts, beside the verdict we expect of MathVerse's judge (its
  prompts' criteria and examples; the judge itself is a model, run by the judge rounds), and
  the replies where rule still differs from it, as docs/transfer.md counts them.

And a reply in a form docs/transfer.md does not list is never read as another letter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossmath.tasks import Reply, get_task, score_replies
from crossmath.tasks.mmmu.official import parse_open
from crossmath.tasks.transfer.choices import read_choice
from tests.transfer_fixtures import (
    FIXTURES,
    mathverse_problems,
    mmmu_questions,
    read_fixture,
    vision_only_index,
    write_mathverse,
    write_mmmu,
)

MATHVERSE = get_task("mathverse-vision")
MMMU = get_task("mmmu-val")
MMMU_TABLE = read_fixture(FIXTURES / "mmmu_replies.jsonl")[1]
MATHVERSE_TABLE = read_fixture(FIXTURES / "mathverse_replies.jsonl")[1]
GOLDEN = json.loads((Path(__file__).parent / "golden" / "mmmu_official.json")
                    .read_text(encoding="utf-8"))["runs"]["table"]


@pytest.fixture(scope="module")
def mmmu_items(tmp_path_factory):
    wanted = {row["id"] for row in MMMU_TABLE}
    root = write_mmmu(tmp_path_factory.mktemp("mmmu"),
                      questions=[q for q in mmmu_questions() if q["id"] in wanted])
    return {item.item_id: item for item in MMMU.load(root)}


@pytest.fixture(scope="module")
def mathverse_items(tmp_path_factory):
    wanted = {row["problem"] for row in MATHVERSE_TABLE}
    root = write_mathverse(tmp_path_factory.mktemp("mathverse"),
                           problems=[p for p in mathverse_problems()
                                     if p["problem_index"] in wanted])
    return {item.item_id: item for item in MATHVERSE.load(root)}


def test_the_tables_are_large_enough_and_cover_both_question_types(mmmu_items,
                                                                   mathverse_items):
    assert len(MMMU_TABLE) >= 40 and len(MATHVERSE_TABLE) >= 40
    assert {mmmu_items[row["id"]].question_type for row in MMMU_TABLE} == \
        {"multiple-choice", "open"}
    problems = {vision_only_index({"problem_index": row["problem"]}) for row in MATHVERSE_TABLE}
    assert {mathverse_items[i].question_type for i in problems} == {"multiple-choice", "open"}


@pytest.mark.parametrize("row", MMMU_TABLE, ids=lambda row: f"{row['id']}: {row['case']}")
def test_mmmu_rule_verdicts(mmmu_items, row):
    assert MMMU.judge(mmmu_items[row["id"]], row["reply"]).correct is row["rule"]


def test_mmmu_official_verdicts_are_mmmus_own(mmmu_items):
    """One run of the official script over the table, items in its order."""
    replies = [Reply(mmmu_items[row["id"]], 0, row["reply"]) for row in MMMU_TABLE]
    verdicts = MMMU.official(replies)
    for row, reply, verdict in zip(MMMU_TABLE, replies, verdicts):
        expected = GOLDEN["items"][row["id"]]
        parsed = (verdict.answer if reply.item.letters
                  else sorted(map(repr, parse_open(reply.output))))
        assert (parsed, verdict.correct) == (expected["pred"], expected["correct"]), row["id"]
        assert verdict.correct is row["official"], row["id"]


def test_mmmu_rule_and_official_disagree_where_docs_say(mmmu_items):
    replies = [Reply(mmmu_items[row["id"]], 0, row["reply"]) for row in MMMU_TABLE]
    scores = score_replies(MMMU, replies, ("question_type",))
    comparison = scores.comparison
    assert (comparison.n, comparison.rule_only, comparison.official_only) == (48, 10, 2)
    assert scores.flat_metrics()["transfer/mmmu-val/disagreement_rate"] == pytest.approx(25.0)
    assert scores.rule.overall.correct == 37 and scores.official.overall.correct == 29
    # a reply committing to nothing is not answered, even to an open question
    unanswered = [row["id"] for row, judgement in
                  zip(MMMU_TABLE, (MMMU.judge(r.item, r.output) for r in replies))
                  if not judgement.answered]
    assert unanswered == ["validation_Basic_Medical_Science_14",
                          "validation_Clinical_Medicine_13", "validation_Economics_14",
                          "validation_Materials_15", "validation_Public_Health_17"]


@pytest.mark.parametrize("row", MATHVERSE_TABLE,
                         ids=lambda row: f"{row['problem']}: {row['case']}")
def test_mathverse_rule_verdicts(mathverse_items, row):
    item = mathverse_items[vision_only_index({"problem_index": row["problem"]})]
    assert MATHVERSE.judge(item, row["reply"]).correct is row["rule"]


def test_where_mathverse_rule_still_differs_from_the_judge():
    """docs/transfer.md lists these: equivalent forms the rule does not see through, a letter
    at the end of running text, a word answer without a tag; never the other way round."""
    differ = [row["case"] for row in MATHVERSE_TABLE if row["rule"] != row["judge"]]
    assert len(MATHVERSE_TABLE) == 55 and differ == [
        "a letter at the end of running text is not read by rule",
        "an equivalent equation rearranged", "an equivalent expression expanded",
        "two parts joined differently", "a word answer without a tag",
        "an equivalent expression factored", "a sentence gold"]
    assert not [row for row in MATHVERSE_TABLE if row["rule"] and not row["judge"]]


OPTIONS = (("A", "Baroque"), ("B", "Rococo"), ("C", "Impressionism"), ("D", "Cubism"))


@pytest.mark.parametrize("reply", [
    "So C.",  # a letter in running text
    "C is wrong, D is right",
    "B and C are both possible here",
    "Either B or C.",
    "<answer>B or C</answer>",
    "<answer>B, C</answer>",  # a list, for a question with one correct option
    "It is not Baroque; it is Rococo.",  # two options' texts
    "Option?",
    "The style resembles impressionist work, maybe",
    "<answer>E</answer>",
])
def test_a_reply_in_an_unlisted_form_is_never_read_as_a_letter(reply):
    assert read_choice(reply, OPTIONS) is None
