"""MathVerse's official scoring: its two-stage judge's prompts read at run time (a stand-in
file here: MathVerse's own text is never shipped), built and parsed as MathVerse's scripts
do, and run by any backend of ours as two more rounds of the same pipeline, with identity and
resume (a rule-based judge double plays the judge)."""

from __future__ import annotations

import json

import mlflow
import pyarrow.parquet as pq
import pytest

from crossmath.models.prompts import PromptTemplateError
from crossmath.pipeline.evaluation import plan_evaluation
from crossmath.pipeline.evaluation import run_evaluation as evaluate
from crossmath.runtime.errors import ConfigError
from crossmath.settings.run import check_run_config
from crossmath.tasks import get_task
from crossmath.tasks.mathverse.judge import (
    COMMIT,
    extracted_answer,
    judge_verdict,
    judgement,
    load_judge_prompts,
    read_judge_prompts,
)
from crossmath.tasks.mathverse.rounds import JUDGE_EXTRACT, JUDGE_SCORE
from crossmath.tasks.transfer.item import NO_ANSWER, Judgement
from tests.doubles import write_item_key
from tests.test_transfer_mathverse import fixture_rows, write

# Our own stand-in, shaped as MathVerse's evaluation/prompts.py is: two module-level strings,
# the second with {question}, {gt} and {extraction} places and doubled literal braces.
STAND_IN = '''"""Stand-in judge prompts for tests (ours, not MathVerse's)."""

demo_prompt_extract = """
Stand-in: copy the final answer of the model response.

1.
Model response: 'so the answer is 3'
Extracted Answer: 3
"""

demo_prompt_score = """
Stand-in: say 1 when the two answers agree, else 0. A literal brace: {{3}}.

[Question]: {question}
[Standard Answer]: {gt}
[Model_answer] : {extraction}
Judgement: """
'''
TASK = get_task("mathverse-vision")


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.py"
    path.write_text(STAND_IN, encoding="utf-8")
    return path


@pytest.fixture
def testmini(tmp_path):
    return write(tmp_path / "MathVerse" / "testmini.parquet", fixture_rows())


def test_the_prompts_are_built_as_mathverses_scripts_build_them(prompts_file, testmini):
    prompts = read_judge_prompts(prompts_file)
    assert prompts.extraction("It is 5.\n<answer>5</answer>") == (
        "Stand-in: copy the final answer of the model response.\n\n1.\n"
        "Model response: 'so the answer is 3'\nExtracted Answer: 3"
        "\n\nModel response: 'It is 5.\n<answer>5</answer>'\nExtracted Answer: ")
    item = {i.item_id: i for i in TASK.load(testmini)}["5"]
    scoring = prompts.scoring(item, "C")
    assert scoring.startswith("Stand-in: say 1 when the two answers agree, else 0. "
                              "A literal brace: {3}.\n\n[Question]: As shown in the figure")
    assert scoring.endswith("D:140°\n[Standard Answer]: C\n[Model_answer] : C\nJudgement:")
    assert prompts.id.startswith("mathverse-judge-") and len(prompts.id) == 28


@pytest.mark.parametrize(("reply", "answer"), [
    ("Extracted Answer: 14", "14"), ("  14 ", "14"), ("Extracted Answer: null", "null"),
])
def test_the_extraction_is_the_judges_reply_without_its_prefix(reply, answer):
    assert extracted_answer(reply) == answer


@pytest.mark.parametrize(("reply", "verdict"), [
    ("Judgement: 1", 1), ("0", 0), (" Judgement:0 ", 0), ("1.", None), ("yes", None),
    ("Judgement: 1\nExplanation: same value", None),
])
def test_the_judgement_is_one_or_zero_and_nothing_else(reply, verdict):
    assert judgement(reply) == verdict


def test_a_verdict_needs_both_stages():
    assert judge_verdict("Extracted Answer: 14", "Judgement: 1") == Judgement("14", True)
    assert judge_verdict("Extracted Answer: 13", "Judgement: 0") == Judgement("13", False)
    assert judge_verdict("null", "Judgement: 0") == Judgement("null", False, answered=False)
    assert judge_verdict("14", None) == Judgement("14", False)  # the scoring request failed
    assert judge_verdict("14", "maybe") == Judgement("14", False)  # unreadable: wrong
    assert judge_verdict(None, None) == NO_ANSWER


def test_the_prompts_file_is_fetched_once_at_the_pinned_commit(prompts_file, tmp_path):
    cache = tmp_path / "cache"
    prompts = load_judge_prompts(cache_dir=cache, url=prompts_file.as_uri())
    assert prompts.source == str(cache / COMMIT / "prompts.py")
    prompts_file.unlink()  # offline from now on: the cached copy serves
    assert load_judge_prompts(cache_dir=cache, url=prompts_file.as_uri()) == prompts
    with pytest.raises(PromptTemplateError, match="task.judge_prompts=/path/to/prompts.py"):
        load_judge_prompts(cache_dir=tmp_path / "empty", url=prompts_file.as_uri())


def test_a_file_without_the_two_prompts_is_refused(tmp_path):
    broken = tmp_path / "prompts.py"
    broken.write_text(STAND_IN.replace("demo_prompt_score = ", "score = "), encoding="utf-8")
    with pytest.raises(PromptTemplateError, match=f"{broken}.*demo_prompt_score"):
        read_judge_prompts(broken)


def judged_config(run_config, prompts_file, path, *extra):
    return run_config("model=oracle", "task=mathverse-vision", f"task.path={path}",
                      "+model@task.judge=oracle", "task.judge._target_=tests.doubles.JudgeDouble",
                      "task.judge.name=judge-double", f"task.judge_prompts={prompts_file}",
                      *extra)


@pytest.mark.parametrize(("overrides", "where"), [
    (["task=mmmu-val", "+model@task.judge=oracle"], "task.judge"),
    (["task=mathverse-vision", "task.judge_prompts=/no/such/prompts.py"], "task.judge_prompts"),
    (["task=mathverse-vision", "task.judge=gpt"], "task.judge"),
])
def test_judge_options_are_checked_at_the_door(run_config, overrides, where):
    with pytest.raises(ConfigError) as caught:
        check_run_config(run_config(*overrides))
    assert caught.value.where == where


def test_the_judge_is_part_of_the_evaluations_identity(run_config, prompts_file, testmini):
    plain = plan_evaluation(run_config("model=oracle", "task=mathverse-vision",
                                       f"task.path={testmini}"))
    judged = plan_evaluation(judged_config(run_config, prompts_file, testmini))
    other = plan_evaluation(judged_config(run_config, prompts_file, testmini,
                                          "task.judge.name=another-judge"))
    assert len({plain.evaluation_id, judged.evaluation_id, other.evaluation_id}) == 3
    assert judged.settings["task"]["judge"]["prompts"] == read_judge_prompts(prompts_file).id
    assert judged.questions.n_rounds == 3 and plain.questions.n_rounds == 1


@pytest.mark.slow
def test_the_judge_rounds_run_through_the_pipeline_and_resume(ray_local, run_config,
                                                              prompts_file, testmini, tmp_path):
    items = TASK.load(testmini)
    key = write_item_key(items, tmp_path / "key.json")
    cfg = judged_config(run_config, prompts_file, testmini,
                        "model._target_=tests.doubles.AnswerKeyBackend",
                        f"+model.item_key={key}", "model.name=answer-key", "samples=2")
    outcome = evaluate(cfg)
    replies = 2 * len(items)
    assert outcome.complete and outcome.n_requests == outcome.n_run_now == 3 * replies
    modalities = outcome.predictions.column("modality").to_pylist()
    assert modalities.count(JUDGE_EXTRACT) == modalities.count(JUDGE_SCORE) == replies
    judge_rows = [row for row in outcome.predictions.to_pylist()
                  if row["modality"] == JUDGE_SCORE]
    assert {row["prompt_id"] for row in judge_rows} == {read_judge_prompts(prompts_file).id}
    assert {row["model"] for row in judge_rows} == {"judge-double"}

    scores = outcome.scores.scores
    assert scores.rule.overall.accuracy == scores.official.overall.accuracy == 100.0
    assert scores.comparison.n == replies and scores.comparison.disagree == 0
    run = mlflow.MlflowClient(cfg.mlflow.tracking_uri).get_run(outcome.mlflow_run_id)
    metrics = run.data.metrics
    for scoring in ("rule", "official"):
        assert metrics[f"transfer/mathverse-vision/{scoring}/acc"] == 100.0
        assert metrics[f"transfer/mathverse-vision/{scoring}/type/multiple-choice/acc"] == 100.0
        assert metrics[f"transfer/mathverse-vision/{scoring}/type/open/acc"] == 100.0
        assert metrics[f"transfer/mathverse-vision/{scoring}/subject/Functions/acc"] == 100.0
    assert metrics["task/mathverse-vision/n_failed"] == 0.0
    assert run.data.tags["task"] == "mathverse-vision"
    assert metrics["transfer/mathverse-vision/disagreement_rate"] == 0.0
    assert metrics["transfer/mathverse-vision/official/unjudged"] == 0.0
    saved = json.loads((outcome.out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert saved["transfer"]["official"]["overall"]["correct"] == replies
    report = (outcome.out_dir / "report.md").read_text(encoding="utf-8")
    assert "| all | 8 | 100.0 | 100.0 | 100.0 |" in report
    assert len(pq.read_table(outcome.out_dir / "predictions.parquet")) == 3 * replies
    judged = pq.read_table(outcome.out_dir / "items.parquet").to_pylist()
    assert sorted(row["item_id"] for row in judged) == sorted(item.item_id for item in items)
    assert json.loads(judged[0]["official_fields"])["answer"] == "C"

    again = evaluate(cfg)  # resumed: neither the model nor the judge is asked again
    assert again.n_run_now == 0 and again.scores.to_dict() == outcome.scores.to_dict()
