"""The fine-tuning story's comparison: headline numbers per stage, changes from the base model,
flat MLflow names and the markdown tables."""

from __future__ import annotations

import pytest

from crossmath.metrics import evaluate_predictions
from crossmath.metrics.answers import answer_block
from crossmath.metrics.transcription import TRANSCRIBED
from crossmath.summary.stages import StageResults, compare_stages
from crossmath.tasks.transfer.tallies import Tally, TaskSummary

PUZZLES = [{"puzzle_id": f"p{i}", "answer": ["1"], "steps": [1], "difficulty": "easy"}
           for i in range(10)]


def scorecard(model: str, right: dict[str, int]):
    """An evaluation where the first ``right[modality]`` puzzles are answered right."""
    rows = [{"puzzle_id": f"p{i}", "model": model, "modality": modality,
             "style": "markdown" if modality == "text" else "original", "sample": 0,
             "output": answer_block(["1" if i < solved else "0"])}
            for modality, solved in right.items() for i in range(10)]
    return evaluate_predictions(rows, PUZZLES, n_resamples=200)


def transfer(task: str, correct: int) -> TaskSummary:
    return TaskSummary(task, Tally(10, correct, 10))


def test_each_stage_is_compared_with_the_base_model():
    base = StageResults("base", "m", scorecard("m", {"text": 9, "image": 1, TRANSCRIBED: 5}),
                        transfer={"mmmu-val": transfer("mmmu-val", 4)})
    tuned = StageResults("sft", "m-sft",
                         scorecard("m-sft", {"text": 9, "image": 6, TRANSCRIBED: 8}),
                         transfer={"mmmu-val": transfer("mmmu-val", 5)}, incomplete=("mmmu-val",))
    comparison = compare_stages([base, tuned])
    before, after = base.headline(), tuned.headline()
    assert before["gap/T-I/macro_acc"] == pytest.approx(80.0)
    assert before["gap/T-That/macro_acc"] == pytest.approx(40.0)
    assert after["image/macro_acc"] == pytest.approx(60.0)
    deltas = comparison.deltas()["sft"]
    assert deltas["gap/T-I/macro_acc"] == pytest.approx(-50.0)
    assert deltas["transfer/mmmu-val/rule/acc"] == pytest.approx(10.0)
    flat = comparison.flat_metrics()
    assert flat["sft/gap/That-I/macro_acc"] == pytest.approx(20.0)
    assert flat["delta/sft/transcribed/macro_acc"] == pytest.approx(30.0)
    assert "delta/base/text/macro_acc" not in flat
    markdown = comparison.markdown()
    assert "| mmmu-val | 40.0 | 50.0 (Δ +10.0) |" in markdown
    assert "| sft | 90.0 (Δ +0.0) | 60.0 (Δ +50.0) |" in markdown
    assert "**Incomplete evaluations**" in markdown and "sft: mmmu-val" in markdown
    assert comparison.to_dict()["stages"][1]["incomplete"] == ["mmmu-val"]
    with pytest.raises(ValueError, match="at least the base"):
        compare_stages([])


def test_a_stage_reads_each_tasks_scores_back_from_metrics_json_by_their_kind():
    from crossmath.tasks import get_task
    from crossmath.tasks.crossmath.questions import PuzzleScores
    from crossmath.tasks.transfer.questions import TransferScores
    from crossmath.tasks.transfer.scorings import TaskScores

    card = scorecard("m", {"text": 9, "image": 1})
    written = {"crossmath": PuzzleScores(card).to_dict(),
               "mmmu-val": TransferScores(TaskScores("mmmu-val",
                                                     transfer("mmmu-val", 4))).to_dict()}
    scores = {task: get_task(task).scores(data) for task, data in written.items()}
    stage = StageResults.of("base", "m", scores, ["mmmu-val"])
    assert stage.scorecard.to_dict() == card.to_dict()
    assert stage.transfer["mmmu-val"].to_dict() == transfer("mmmu-val", 4).to_dict()
    assert stage.incomplete == ("mmmu-val",)
    assert stage.headline()["gap/T-I/macro_acc"] == pytest.approx(80.0)
    with pytest.raises(TypeError, match="kind dict have no place"):
        StageResults.of("base", "m", {"nope": {}})
