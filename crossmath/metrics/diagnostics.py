"""Format diagnostics: how a model wrote its answers, reported beside accuracy and never instead of it.

Per request (:class:`AnswerCheck`) and per run of one sample index (:class:`RunFormat`), in
the run's requests (one per puzzle, or per (puzzle, style) when styles are pooled):

- ``error_rate``: requests that got no response, over all requests: the backend reported an
  error, or there is no prediction for the request at all.
- ``answer_tag_rate``: responses holding a complete answer block (the primary rule found one,
  possibly empty), over the responses.
- ``wrong_count_rate``: among responses with a block, those whose number of tokens is not the
  puzzle's number of blanks (an empty block has 0 tokens).
- ``non_integer_rate``: among responses with a block, those with at least one token that is
  not a plain non-negative integer: ASCII digits without a leading zero (``0`` itself is one).
  ``07``, ``-3``, ``7.``, ``3/4`` and ``٣`` are not; none of them can equal a gold value.
- ``lenient_macro_acc`` and ``lenient_micro_acc``: the release's macro and micro accuracy of
  :func:`~crossmath.metrics.answers.extract_lenient_answer` tokens, over all requests (a failed
  request is wrong, as in the primary score).

A rate whose denominator is zero in a run (no response, no block) is undefined there (None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from crossmath.metrics.accuracy import PuzzleScore, run_accuracy, score_answer
from crossmath.metrics.answers import extract_lenient_answer

DIAGNOSTIC_NAMES: tuple[str, ...] = ("answer_tag_rate", "wrong_count_rate", "non_integer_rate",
                                     "error_rate", "lenient_macro_acc", "lenient_micro_acc")
_PLAIN_INTEGER = re.compile(r"0|[1-9][0-9]*")


def is_plain_integer(token: str) -> bool:
    """A non-negative integer written as gold values are: ASCII digits, no leading zero."""
    return _PLAIN_INTEGER.fullmatch(token) is not None


@dataclass(frozen=True)
class AnswerCheck:
    """How one request scored (primary and lenient) and how its answer was written."""

    score: PuzzleScore
    lenient: PuzzleScore
    failed: bool
    tagged: bool
    count_matches: bool
    integers_only: bool


def check_answer(answer_text: str | None, tokens: Sequence[str] | None,
                 gold: Sequence[str], steps: Sequence[int]) -> AnswerCheck:
    """Check one request. ``answer_text`` is the text answers are read from (the output, as the
    answer rule prepared it), None when the request got no response; ``tokens`` are the primary
    rule's tokens of that text."""
    failed = answer_text is None
    tokens = None if failed else tokens
    lenient = None if failed else extract_lenient_answer(answer_text)
    return AnswerCheck(
        score=score_answer(tokens, gold, steps),
        lenient=score_answer(lenient, gold, steps),
        failed=failed,
        tagged=tokens is not None,
        count_matches=tokens is not None and len(tokens) == len(gold),
        integers_only=tokens is not None and all(is_plain_integer(token) for token in tokens),
    )


@dataclass(frozen=True)
class RunFormat:
    """Format counts of one sample index over a set of requests, and its lenient accuracy."""

    n_requests: int
    n_failed: int
    n_tagged: int
    n_wrong_count: int
    n_non_integer: int
    lenient_macro: float
    lenient_micro: float

    def rates(self) -> dict[str, float | None]:
        """Each diagnostic of :data:`DIAGNOSTIC_NAMES` as a fraction, None where undefined."""
        responses = self.n_requests - self.n_failed
        return {
            "answer_tag_rate": _ratio(self.n_tagged, responses),
            "wrong_count_rate": _ratio(self.n_wrong_count, self.n_tagged),
            "non_integer_rate": _ratio(self.n_non_integer, self.n_tagged),
            "error_rate": _ratio(self.n_failed, self.n_requests),
            "lenient_macro_acc": self.lenient_macro,
            "lenient_micro_acc": self.lenient_micro,
        }

    def to_dict(self) -> dict:
        return {"n_requests": self.n_requests, "n_failed": self.n_failed, "n_tagged": self.n_tagged,
                "n_wrong_count": self.n_wrong_count, "n_non_integer": self.n_non_integer,
                "lenient_macro": self.lenient_macro, "lenient_micro": self.lenient_micro}

    @classmethod
    def from_dict(cls, data: dict) -> "RunFormat":
        return cls(int(data["n_requests"]), int(data["n_failed"]), int(data["n_tagged"]),
                   int(data["n_wrong_count"]), int(data["n_non_integer"]),
                   float(data["lenient_macro"]), float(data["lenient_micro"]))


def run_format(checks: Iterable[AnswerCheck]) -> RunFormat:
    """Aggregate one run's checks; a run without requests is an error, as in :func:`run_accuracy`."""
    checks = list(checks)
    lenient = run_accuracy(check.lenient for check in checks)
    tagged = [check for check in checks if check.tagged]
    return RunFormat(
        n_requests=len(checks),
        n_failed=sum(check.failed for check in checks),
        n_tagged=len(tagged),
        n_wrong_count=sum(not check.count_matches for check in tagged),
        n_non_integer=sum(not check.integers_only for check in tagged),
        lenient_macro=lenient.macro,
        lenient_micro=lenient.micro,
    )


def _ratio(count: int, total: int) -> float | None:
    return count / total if total else None
