"""A transfer task's items as the main job's questions: one unit per item, judged by the task.

Each item of the task (``crossmath.tasks``) is one unit with one request per sample, its
finished prompt as the task built it and its images given (nothing is rendered). A request's
identity is the task, the item id, the item's content key (its prompt: every text, every
image's bytes, where each image stands), its option letters, the backend and the sample, so
a changed prompt or image is asked again and nothing else is.

The dataflow's unit and prediction columns are CrossMath's; an item fills them so:
``puzzle_id`` and ``name`` hold the item id (what results are joined on), ``style`` the
task's name, ``modality`` ``task`` (so failures are counted as ``task/<task>``), ``grid`` and
``difficulty`` are empty, and ``options`` holds the letters of a multiple-choice question for
rule-based backends (``model=random`` guesses one). Every reply is judged by the task's own
rules (a failed request is no answer: wrong), and tallied overall and per breakdown field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa

from crossmath.pipeline.calls import TEXT_UNIT
from crossmath.pipeline.fingerprints import digest
from crossmath.pipeline.identity import request_id
from crossmath.pipeline.shards import write_table
from crossmath.summary.transfer_views import transfer_console, write_transfer_report
from crossmath.tasks import Judgement, Outcome, TaskItem, TaskSummary, TransferTask, summarize

TASK_MODALITY = "task"  # the ``modality`` of a transfer task's requests and predictions
ITEMS_FILE = "items.parquet"
NO_ANSWER = Judgement(None, False)


@dataclass(frozen=True)
class TransferScores:
    """A transfer task's tallies."""

    summary: TaskSummary

    def to_dict(self) -> dict[str, Any]:
        return {"transfer": self.summary.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TransferScores":
        """The scores back from ``metrics.json`` (``to_dict``)."""
        return cls(TaskSummary.from_dict(data["transfer"]))

    def flat_metrics(self, model: str) -> dict[str, float]:
        return self.summary.flat_metrics()

    def console(self, model: str) -> str:
        return transfer_console(self.summary)

    def write_report(self, folder: Path, model: str) -> list[Path]:
        return write_transfer_report(self.summary, folder, model)


class TaskQuestions:
    """The ``items`` of ``task``, each asked ``samples`` times of the backend ``backend_id``;
    tallied per value of each of ``breakdown`` (item breakdown fields, or ``question_type``)."""

    n_rounds = 1

    def __init__(self, task: TransferTask, items: Sequence[TaskItem], samples: int,
                 backend_id: str, breakdown: Sequence[str], data_name: str) -> None:
        self.task = task
        self.items = list(items)
        self.samples = samples
        self.backend_id = backend_id
        self.breakdown = tuple(breakdown)
        self.data_name = data_name
        self.prompt_id = task.name  # each task's prompts are its own (docs/transfer.md)

    def settings(self) -> dict[str, Any]:
        return {"task": {"name": self.task.name, "samples": self.samples,
                         "items": digest([[item.item_id, item.content_key, list(item.gold),
                                           list(item.letters)] for item in self.items])}}

    def tags(self) -> dict[str, str]:
        return {"dataset": self.data_name, "task": self.task.name}

    def units(self, round_index: int, answered: pa.Table) -> list[dict]:
        return [self._unit(item) for item in self.items]

    def _unit(self, item: TaskItem) -> dict:
        identity = {"task": self.task.name, "item": item.item_id, "content": item.content_key,
                    "options": list(item.letters)}
        texts, image_at = list(item.prompt.texts), list(item.prompt.image_at)
        return {
            "puzzle_id": item.item_id, "name": item.item_id, "grid": "", "difficulty": "",
            "n_blanks": 0, "value_range": [0, 0], "style": self.task.name,
            "modality": "image" if item.prompt.images else TEXT_UNIT, "image_path": "",
            "images": list(item.prompt.images), "options": list(item.letters),
            "requests": [{"modality": TASK_MODALITY, "sample": sample, "attempt": 1,
                          "request_id": request_id(self.backend_id, {**identity, "sample": sample}),
                          "prompt_texts": texts, "image_at": image_at}
                         for sample in range(self.samples)],
        }

    def score(self, predictions: pa.Table) -> TransferScores:
        items = {item.item_id: item for item in self.items}
        outcomes = []
        for row in predictions.select(["puzzle_id", "output", "error"]).to_pylist():
            item = items[row["puzzle_id"]]
            judgement = (NO_ANSWER if row["error"] is not None
                         else self.task.judge(item, row["output"] or ""))
            outcomes.append(Outcome.of(item, judgement))
        return TransferScores(summarize(self.task.name, outcomes, self.breakdown))

    def write_reference(self, folder: Path) -> Path:
        """The items as judged (ids, gold, type, options, breakdown, content keys), without
        their images."""
        rows = [{k: v for k, v in item.to_row().items() if k != "images"} for item in self.items]
        path = folder / ITEMS_FILE
        write_table(pa.Table.from_pylist(rows), str(path))
        return path
