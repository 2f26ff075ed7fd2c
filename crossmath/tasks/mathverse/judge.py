"""MathVerse's official scoring: its two-stage judge, asked of a model of the user's choice.

MathVerse scores a reply with two calls to a language model (``evaluation/extract_answer_s1.py``
and ``score_answer_s2.py`` of ZrrSkywalker/MathVerse):

1. **Extraction**: its few-shot extraction prompt (``demo_prompt_extract``), stripped, a blank
   line, then ``Model response: '<the whole reply>'`` and ``Extracted Answer: `` on the next
   line. The answer is the judge's reply with any ``Extracted Answer: `` removed, stripped.
2. **Scoring**: its few-shot scoring prompt (``demo_prompt_score``), stripped, with the
   question, the gold answer as published and the extracted answer put in its
   ``{question}``, ``{gt}`` and ``{extraction}`` places. The verdict is the judge's reply
   with ``Judgement:`` removed, stripped: ``1`` right, ``0`` wrong. The official script asks
   again, without end, until it gets one of the two; we ask once, and a reply that is neither
   scores wrong and is counted (``unjudged``).

MathVerse ran both with ``gpt-3.5-turbo`` (temperature 0, at most 256 tokens); any backend of
ours can be the judge. The question shown is the dataset's ``question_for_eval`` (the Vision
Only rows' ``question`` is empty), as lmms-eval's MathVerse task does.

The two prompts are MathVerse's text, not ours: they are read at run time from its
``evaluation/prompts.py`` at a pinned commit (fetched once, cached), or from a local copy
(``task.judge_prompts=/path/to/prompts.py``); never copied here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from crossmath.models.pinned_files import fetch_pinned_file, string_constants
from crossmath.tasks.transfer.item import NO_ANSWER, Judgement, TaskItem

REPOSITORY = "ZrrSkywalker/MathVerse"
COMMIT = "937b090597aeafb8e82b35d310a4bc5b9e2ea29d"
PROMPTS_FILE = "evaluation/prompts.py"
PROMPTS_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{PROMPTS_FILE}"
CACHE_DIR = Path("~/.cache/crossmath/mathverse").expanduser()
EXTRACT, SCORE = "demo_prompt_extract", "demo_prompt_score"
EXTRACTED_PREFIX = "Extracted Answer: "
JUDGEMENT_PREFIX = "Judgement:"
NOT_ANSWERED = ("", "null")  # what the extraction prompt's examples extract from a non-answer


@dataclass(frozen=True)
class JudgePrompts:
    """MathVerse's two judge prompts, as read from one ``prompts.py``."""

    extract: str
    score: str
    source: str

    @property
    def id(self) -> str:
        """``mathverse-judge-`` and a hash of both prompts: recorded with every judge reply."""
        texts = f"{self.extract}\x00{self.score}".encode("utf-8")
        return f"mathverse-judge-{hashlib.sha256(texts).hexdigest()[:12]}"

    def extraction(self, reply: str) -> str:
        """The first stage's prompt for a model's whole reply."""
        return f"{self.extract.strip()}\n\nModel response: '{reply}'\n{EXTRACTED_PREFIX}"

    def scoring(self, item: TaskItem, extracted: str) -> str:
        """The second stage's prompt: the item's question and published answer, and the
        answer the first stage extracted."""
        fields = item.official_fields
        return self.score.strip().format(question=fields.get("question", ""),
                                         gt=fields.get("answer", item.gold[0]),
                                         extraction=extracted)


def read_judge_prompts(path: str | Path) -> JudgePrompts:
    """The judge prompts of a MathVerse ``prompts.py``, parsed without running it."""
    constants = string_constants(path, (EXTRACT, SCORE), f"MathVerse's {PROMPTS_FILE}")
    return JudgePrompts(constants[EXTRACT], constants[SCORE], str(path))


def load_judge_prompts(path: str | Path | None = None, cache_dir: str | Path = CACHE_DIR,
                       url: str = PROMPTS_URL) -> JudgePrompts:
    """The judge prompts from a local ``prompts.py``, or (``path`` None) from MathVerse's
    repository at the pinned commit, fetched once into ``cache_dir``."""
    if path is None:
        path = fetch_pinned_file(
            url, Path(cache_dir).expanduser() / COMMIT / Path(PROMPTS_FILE).name,
            f"download {PROMPTS_FILE} of {REPOSITORY} at commit {COMMIT} and pass "
            "task.judge_prompts=/path/to/prompts.py")
    return read_judge_prompts(Path(path).expanduser())


def extracted_answer(judge_reply: str) -> str:
    """The first stage's answer: the judge's reply without ``Extracted Answer: ``."""
    return judge_reply.strip().replace(EXTRACTED_PREFIX, "").strip()


def judgement(judge_reply: str) -> int | None:
    """The second stage's verdict, 1 or 0; None for a reply that is neither."""
    verdict = judge_reply.strip().replace(JUDGEMENT_PREFIX, "").strip()
    return int(verdict) if verdict in ("0", "1") else None


def judge_verdict(extraction: str | None, scoring: str | None) -> Judgement:
    """The official verdict on one reply from the judge's two replies (None: that request
    failed, or was never asked because the one before it failed): right only on a ``1``."""
    if extraction is None:
        return NO_ANSWER
    answer = extracted_answer(extraction)
    answered = answer.lower() not in NOT_ANSWERED
    verdict = None if scoring is None else judgement(scoring)
    return Judgement(answer, verdict == 1, answered=answered)
