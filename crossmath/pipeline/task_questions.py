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
from crossmath.pipeline.prediction_table import PredictionTable, judged_prediction_table
from crossmath.pipeline.shards import write_table
from crossmath.summary.headline import transfer_headline
from crossmath.summary.transfer_views import transfer_console, write_transfer_report
from crossmath.tasks import Judgement, Outcome, TaskItem, TaskSummary, TransferTask, summarize
from crossmath.tracking.datasets import DatasetRef
from crossmath.tracking.run_labels import data_label

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

    def headline(self, model: str) -> dict[str, float]:
        return transfer_headline(self.summary)


class TaskQuestions:
    """The ``items`` of ``task``, each asked ``samples`` times of the backend ``backend_id``;
    tallied per value of each of ``breakdown`` (item breakdown fields, or ``question_type``).
    ``path`` is the local copy they were read from (None: the Hub)."""

    n_rounds = 1

    def __init__(self, task: TransferTask, items: Sequence[TaskItem], samples: int,
                 backend_id: str, breakdown: Sequence[str], data_name: str,
                 path: str | None = None) -> None:
        self.path = path
        self.task = task
        self.items = list(items)
        self.samples = samples
        self.backend_id = backend_id
        self.breakdown = tuple(breakdown)
        self.data_name = data_name
        self.prompt_id = task.name  # each task's prompts are its own (docs/transfer.md)

    def settings(self) -> dict[str, Any]:
        return {"task": {"name": self.task.name, "samples": self.samples,
                         "items": self.fingerprint}}

    @property
    def fingerprint(self) -> str:
        """Identifies the items as asked and judged: ids, content, gold, option letters."""
        return digest([[item.item_id, item.content_key, list(item.gold), list(item.letters)]
                       for item in self.items])

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
        outcomes = [Outcome.of(item, judgement)
                    for _, item, judgement in self._judged(predictions.to_pylist())]
        return TransferScores(summarize(self.task.name, outcomes, self.breakdown))

    def _judged(self, rows: list[dict]) -> list[tuple[dict, TaskItem, Judgement]]:
        """Each prediction row with its item and how its reply is judged."""
        items = {item.item_id: item for item in self.items}
        judged = []
        for row in rows:
            item = items[row["puzzle_id"]]
            judgement = (NO_ANSWER if row["error"] is not None
                         else self.task.judge(item, row["output"] or ""))
            judged.append((row, item, judgement))
        return judged

    def write_reference(self, folder: Path) -> Path:
        """The items as judged (ids, gold, type, options, breakdown, content keys), without
        their images."""
        rows = [{k: v for k, v in item.to_row().items() if k != "images"} for item in self.items]
        path = folder / ITEMS_FILE
        write_table(pa.Table.from_pylist(rows), str(path))
        return path

    def label_parts(self) -> list[str]:
        return [data_label(self.data_name)]

    def describe(self) -> str:
        return (f"{len(self.items)} items of the transfer task {self.task.name} "
                f"({self.data_name}, fingerprint {self.fingerprint}), {self.samples} sample(s) "
                "each")

    def dataset(self) -> DatasetRef:
        if self.path is None:
            return DatasetRef(self.data_name, self.fingerprint, self.task.hub_repo,
                              "hugging_face")
        return DatasetRef.of_path(self.data_name, self.fingerprint, self.path)

    def prediction_table(self, predictions: pa.Table, with_images: bool = True
                         ) -> PredictionTable:
        """The rows without images (a task's images are its items', often large)."""
        return judged_prediction_table(
            (row, judgement.answer, judgement.correct, " | ".join(item.gold))
            for row, item, judgement in self._judged(predictions.to_pylist()))
