"""Scoring: answer extraction, the release's accuracies, format diagnostics, modality gaps, the
release's logs.

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
from crossmath.metrics.answers import (
    ANSWER_RULES,
    extract_answer,
    extract_answer_after_thinking,
    extract_lenient_answer,
    parse_release_line,
    split_answer_tokens,
    strip_thinking,
)
from crossmath.metrics.diagnostics import DIAGNOSTIC_NAMES, AnswerCheck, RunFormat
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
    "ALL", "ANSWER_RULES", "DIAGNOSTIC_NAMES", "GAP_PAIRS", "STEP_GROUPS", "AnswerCheck",
    "Evaluation", "GapEstimate", "GapResult", "GroupMetrics", "MeanStd", "PuzzleScore",
    "RunAccuracy", "RunFormat", "evaluate_predictions", "extract_answer",
    "extract_answer_after_thinking", "extract_lenient_answer", "paired_gap", "parse_release_line",
    "run_accuracy", "score_answer", "split_answer_tokens", "strip_thinking",
]
