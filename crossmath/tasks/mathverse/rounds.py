"""MathVerse's official judge as two more rounds of the same pipeline, asked of the judge model.

With ``task.judge`` set (a model config: ``+model@task.judge=openai task.judge.base_url=...``),
a MathVerse evaluation runs three rounds, each through the same dataflow, store and resume:

- round 0: the evaluated model answers every item (``crossmath.tasks.transfer.questions``);
- round 1: the judge extracts the answer of every reply that was answered (MathVerse's
  extraction prompt around the whole reply);
- round 2: the judge scores every extraction that was answered against the item's question
  and published answer (MathVerse's scoring prompt).

Each judge request's identity is the judge backend's, the request it judges (the reply's or
the extraction's request id) and its whole prompt, so a rerun asks nothing answered again, a
changed reply or judge is asked anew, and a judge request that failed is tried again like
any other. Its predictions sit in the evaluation's store beside the model's, with modality
``judge-extract`` or ``judge-score``; the sample is the judged reply's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa

from crossmath.core.fingerprints import digest
from crossmath.core.requests import TEXT_UNIT, request_id
from crossmath.tasks.mathverse.judge import JudgePrompts, extracted_answer, judge_verdict, judgement
from crossmath.tasks.questions import BackendRef
from crossmath.tasks.transfer.item import Judgement, TaskItem

JUDGE_EXTRACT = "judge-extract"
JUDGE_SCORE = "judge-score"
EXTRACT_ROUND, SCORE_ROUND = 1, 2

Key = tuple[str, int]  # (item id, sample)


@dataclass(frozen=True)
class Judge:
    """The judge model (its resolved config and identity) and MathVerse's prompts: a
    ``crossmath.tasks.transfer.questions.RoundJudge`` of two rounds."""

    model_config: dict[str, Any]
    backend: BackendRef
    prompts: JudgePrompts
    n_rounds = SCORE_ROUND  # its rounds: extraction (1), then scoring (2)

    @property
    def prompt_id(self) -> str:
        return self.prompts.id

    def settings(self) -> dict[str, Any]:
        """What of the judge the evaluation's identity hashes."""
        return {"backend": self.backend.settings, "prompts": self.prompts.id}

    def units(self, round_index: int, task: str, items: Mapping[str, TaskItem],
              answered: pa.Table, reply_modality: str) -> list[dict]:
        """The judge requests of round ``round_index``: one per answered request of the round
        before (the model's replies, then the extractions)."""
        if round_index == EXTRACT_ROUND:
            judged = _answered(answered, reply_modality)
            return [self._unit(task, row, JUDGE_EXTRACT, self.prompts.extraction(row["output"]))
                    for row in judged]
        judged = _answered(answered, JUDGE_EXTRACT)
        return [self._unit(task, row, JUDGE_SCORE,
                           self.prompts.scoring(items[row["puzzle_id"]],
                                                extracted_answer(row["output"])))
                for row in judged]

    def verdicts(self, predictions: pa.Table, keys: Sequence[Key]
                 ) -> tuple[list[Judgement], int]:
        """The official verdict on each reply ``keys`` names (``judge_verdicts``)."""
        return judge_verdicts(predictions, keys)

    def _unit(self, task: str, judged: Mapping[str, Any], stage: str, prompt: str) -> dict:
        identity = {"task": task, "judge": stage, "judged": judged["request_id"],
                    "prompt": digest(prompt)}
        return {
            "puzzle_id": judged["puzzle_id"], "name": judged["puzzle_id"], "grid": "",
            "difficulty": "", "n_blanks": 0, "value_range": [0, 0], "style": task,
            "modality": TEXT_UNIT, "image_path": "", "images": [], "options": [],
            "requests": [{"modality": stage, "sample": judged["sample"], "attempt": 1,
                          "request_id": request_id(self.backend.id, identity),
                          "prompt_texts": [prompt], "image_at": []}],
        }


def _answered(predictions: pa.Table, modality: str) -> Iterable[dict]:
    rows = predictions.select(["request_id", "puzzle_id", "sample", "modality", "output",
                               "error"]).to_pylist()
    return [row for row in rows if row["modality"] == modality and row["error"] is None]


def judge_verdicts(predictions: pa.Table, keys: Iterable[Key]) -> tuple[list[Judgement], int]:
    """The official verdict on each reply ``keys`` names, from the judge's predictions, and
    how many scoring replies were neither 0 nor 1 (scored wrong)."""
    outputs: dict[str, dict[Key, str | None]] = {JUDGE_EXTRACT: {}, JUDGE_SCORE: {}}
    for row in predictions.select(["puzzle_id", "sample", "modality", "output",
                                   "error"]).to_pylist():
        if row["modality"] in outputs:
            outputs[row["modality"]][(row["puzzle_id"], row["sample"])] = (
                None if row["error"] is not None else row["output"] or "")
    unjudged = sum(output is not None and judgement(output) is None
                   for output in outputs[JUDGE_SCORE].values())
    return [judge_verdict(outputs[JUDGE_EXTRACT].get(key), outputs[JUDGE_SCORE].get(key))
            for key in keys], unjudged
