"""Backends that misbehave on purpose, or know the answers, to exercise the pipeline.

``SlowBackend`` answers like the oracle after a delay per request, so a run can be stopped
halfway. ``CrashingBackend`` kills its own worker process on its first batch (once per marker
file), as an out-of-memory kill or a lost node would, so Ray's actor restart is tested for real.

For the transfer tasks, ``AnswerKeyBackend`` answers every item with its gold answer (a run
must score 100%) and ``RandomChoiceBackend`` guesses an option letter (chance). Both learn
about an item from an *item key*, a JSON file that ``write_item_key`` writes from the loaded
items, keyed by each prompt's content key: a backend sees only the prompt, hashes it the same
way, and finds the item, whatever request ids the pipeline uses.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Iterable, Sequence

from crossmath.metrics.answers import answer_block
from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.baselines import OracleBackend, RandomBackend, _RuleBackend
from crossmath.tasks import TaskItem, prompt_key


class SlowBackend(OracleBackend):
    def __init__(self, name: str = "slow-oracle", delay_s: float = 0.05) -> None:
        super().__init__(name)
        self.delay_s = delay_s

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        time.sleep(self.delay_s * len(requests))
        return super().generate(requests)


class CrashingBackend(OracleBackend):
    def __init__(self, marker: str, name: str = "crashing-oracle") -> None:
        super().__init__(name)
        self.marker = Path(marker)

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # the process dies mid-batch, without cleanup
        return super().generate(requests)


def write_item_key(items: Iterable[TaskItem], path: str | Path) -> Path:
    """The item key of ``items``: content key -> first gold answer and option letters."""
    key = {item.content_key: {"answer": item.gold[0], "letters": list(item.letters)}
           for item in items}
    Path(path).write_text(json.dumps(key, indent=1), encoding="utf-8")
    return Path(path)


def _read_item_key(path: str | Path) -> dict[str, dict]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class AnswerKeyBackend(_RuleBackend):
    """Answers each transfer item with its gold answer in answer tags; a prompt missing from
    the key (one built differently from the key's items) gets no answer."""

    def __init__(self, item_key: str, name: str = "answer-key") -> None:
        self.name = name
        self.key = _read_item_key(item_key)

    def answer(self, request: ModelRequest) -> str:
        entry = self.key.get(prompt_key(request.prompt))
        if entry is None:
            return "This prompt is not in my answer key."
        return "From the answer key.\n" + answer_block([entry["answer"]])


class RandomChoiceBackend(RandomBackend):
    """Chance on transfer tasks: a uniform option letter for multiple choice, seeded by
    ``(seed, request_id)`` as ``RandomBackend`` is; open questions get no answer."""

    def __init__(self, item_key: str, name: str = "random-choice", seed: int = 0) -> None:
        super().__init__(name, seed)
        self.key = _read_item_key(item_key)

    def answer(self, request: ModelRequest) -> str:
        entry = self.key.get(prompt_key(request.prompt))
        if entry is None or not entry["letters"]:
            return "I cannot guess an open answer."
        rng = random.Random(self._seed_for(request.request_id))
        return "A random guess.\n" + answer_block([rng.choice(entry["letters"])])
