"""The release's prediction logs: read them and score them the way its ``calc_metric.py`` does.

Format (written by the release's ``batch_inference_qwen35.py``): one file per sample,
``{prefix}run_{i}.log`` with i = 1..k, and in each file one line per puzzle, in the order of
the data file. A line holds the answer tokens joined by single spaces, or the words
``No Answer`` when the output had no ``<answer>`` tag; an empty line is an empty answer block.
When scoring, a line may also be wrapped in ``<answer>…</answer>`` and may separate its
tokens with commas, pipes or tabs (the release tolerates these too). The line rule,
:func:`~crossmath.metrics.answers.parse_release_line`, lives beside the rule for model outputs
in :mod:`crossmath.metrics.answers`, which says why the two differ.

Where the release is silent or lenient, we are strict and say where: a log must have exactly
one line per puzzle, unless ``allow_partial`` asks to score a shorter log on the puzzles it
covers (the release always does that, e.g. for a run still in progress).
"""

from __future__ import annotations

import glob
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from crossmath.core.errors import UserError
from crossmath.metrics.accuracy import (
    STEP_GROUPS,
    MeanStd,
    RunAccuracy,
    release_step_rate,
    run_accuracy,
    score_answer,
)
from crossmath.metrics.answers import NO_ANSWER_LINE, parse_release_line
from crossmath.puzzle.records import OfficialRecord, read_official_jsonl

RELEASE_SUMMARY_KEYS = ("micro_acc", "macro_acc", "step1_correct_rate", "step2_correct_rate",
                        "step3_correct_rate", "step4+_correct_rate")


class ReleaseLogError(UserError, ValueError):
    """A prediction log that cannot be read or does not line up with its data file."""


def format_release_line(pred: Sequence[str] | None) -> str:
    """One log line, as the release writes it (without the newline)."""
    return NO_ANSWER_LINE if pred is None else " ".join(pred)


def run_log_paths(pattern: str) -> list[Path]:
    """The files a glob matches, in run order (``run_2`` before ``run_10``); none is an error."""
    paths = [Path(p) for p in glob.glob(str(Path(pattern).expanduser())) if Path(p).is_file()]
    if not paths:
        raise ReleaseLogError(f"no prediction log matches {pattern!r}")
    return sorted(paths, key=_natural_key)


def read_release_log(path: str | Path) -> list[list[str] | None]:
    """One prediction per line of the file (lines split as Python's text mode splits them)."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ReleaseLogError(f"{path}:{line}: not valid UTF-8 ({error.reason})") from None
    # Universal newlines, as the release's text-mode readlines(): \n, \r\n and \r end a line.
    lines = io.StringIO(text, newline=None).readlines()
    return [parse_release_line(line) for line in lines]


@dataclass(frozen=True)
class GoldPuzzle:
    """A data file's puzzle as the metric sees it."""

    answer: list[str]
    steps: list[int]
    difficulty: str
    record: OfficialRecord


def read_gold(data_path: str | Path) -> list[GoldPuzzle]:
    """Gold tokens (``markdown_answer``) and waves (``markdown_answer_step``) of every record."""
    puzzles = []
    for record in read_official_jsonl(data_path):
        answer, steps = record.answer_tokens(), record.step_labels()
        if steps is None:
            raise record.error("needed for step-wise accuracy", "markdown_answer_step")
        if not answer:
            raise record.error("no answer values", "markdown_answer")
        if len(steps) != len(answer):
            raise record.error(f"{len(steps)} step labels for {len(answer)} answer values",
                               "markdown_answer_step")
        puzzles.append(GoldPuzzle(answer, steps, str(record.fields["difficulty"]), record))
    if not puzzles:
        raise ReleaseLogError(f"{data_path}: no records")
    return puzzles


@dataclass(frozen=True)
class ScoredRun:
    """One log file scored over the puzzles it covers, overall and per difficulty."""

    path: Path
    overall: RunAccuracy
    by_difficulty: dict[str, RunAccuracy]


@dataclass(frozen=True)
class ReleaseScore:
    data_path: Path
    n_puzzles: int
    runs: tuple[ScoredRun, ...]

    def stat(self, key: str, difficulty: str | None = None) -> MeanStd:
        """Mean and std over runs of a release summary key (``macro_acc``, ``step2_correct_rate``…).

        Difficulties missing from a run (a partial log) are left out of that key's runs.
        """
        accuracies = [run.overall if difficulty is None else run.by_difficulty.get(difficulty)
                      for run in self.runs]
        return MeanStd.of([release_value(acc, key) for acc in accuracies if acc is not None])

    def difficulties(self) -> list[str]:
        return list(dict.fromkeys(d for run in self.runs for d in run.by_difficulty))

    def summary(self) -> dict[str, dict[str, float]]:
        """The release's summary keys, each ``{"mean": percent, "std": percent}``.

        Unlike ``calc_metric.py``, a single run is reported in percent too (the release
        returns a fraction when there is one run).
        """
        return {key: self.stat(key).to_dict() for key in RELEASE_SUMMARY_KEYS}


def score_release_logs(data_path: str | Path, pattern: str, *, allow_partial: bool = False) -> ReleaseScore:
    """Score every log matching ``pattern`` (the k samples, in run order) against a data file."""
    gold = read_gold(data_path)
    runs = tuple(_score_log(path, gold, data_path, allow_partial) for path in run_log_paths(pattern))
    return ReleaseScore(Path(data_path), len(gold), runs)


def _score_log(path: Path, gold: list[GoldPuzzle], data_path: str | Path, allow_partial: bool) -> ScoredRun:
    preds = read_release_log(path)
    if len(preds) > len(gold):
        raise ReleaseLogError(
            f"{path}:{len(gold) + 1}: no puzzle for this line ({data_path} has "
            f"{len(gold)} puzzles, the log has {len(preds)} lines)")
    if not preds or (len(preds) < len(gold) and not allow_partial):
        first_missing = gold[len(preds)].record
        raise ReleaseLogError(
            f"{path}: {len(preds)} lines for {len(gold)} puzzles in {data_path}; line "
            f"{len(preds) + 1} (puzzle {first_missing.name}, data line {first_missing.line}) "
            f"is missing" + ("" if not preds else
                             "; pass allow_partial=true to score only the puzzles it covers"))
    scored = [(puzzle.difficulty, score_answer(pred, puzzle.answer, puzzle.steps))
              for pred, puzzle in zip(preds, gold)]
    difficulties = list(dict.fromkeys(difficulty for difficulty, _ in scored))
    by_difficulty = {d: run_accuracy(s for difficulty, s in scored if difficulty == d) for d in difficulties}
    return ScoredRun(path, run_accuracy(s for _, s in scored), by_difficulty)


def release_value(accuracy: RunAccuracy, key: str) -> float:
    """A run's value (a fraction) for a release summary key, or for ``answer_rate``."""
    if key == "macro_acc":
        return accuracy.macro
    if key == "micro_acc":
        return accuracy.micro
    if key == "answer_rate":
        return accuracy.answer_rate
    group = key.removesuffix("_correct_rate")
    if group not in STEP_GROUPS:
        raise KeyError(f"unknown summary key {key!r}")
    return release_step_rate(accuracy, group)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]
