"""Scoring: answer extraction, the release's accuracies, modality gaps, the release's logs.

Plain functions on plain data; imports neither Ray nor torch (nor mlflow).
"""

from crossmath.metrics.accuracy import (
    STEP_GROUPS,
    MeanStd,
    PuzzleScore,
    RunAccuracy,
    run_accuracy,
    score_answer,
)
from crossmath.metrics.answers import extract_answer, split_answer_tokens, strip_thinking
from crossmath.metrics.gaps import GapEstimate, paired_gap
from crossmath.metrics.scorecard import (
    ALL,
    GAP_PAIRS,
    Evaluation,
    GapResult,
    GroupMetrics,
    evaluate_predictions,
)

__all__ = [
    "ALL", "GAP_PAIRS", "STEP_GROUPS", "Evaluation", "GapEstimate", "GapResult", "GroupMetrics",
    "MeanStd", "PuzzleScore", "RunAccuracy", "evaluate_predictions", "extract_answer",
    "paired_gap", "run_accuracy", "score_answer", "split_answer_tokens", "strip_thinking",
]
