"""A transfer task's items as the main job's questions: one unit per item, scored two ways.

Each item of the task (``crossmath.tasks``) is one unit with one request per sample, its
finished prompt as the task built it and its images given (nothing is rendered). A request's
identity is the task, the item id, the item's content key (its prompt: every text, every
image's bytes, where each image stands), its option letters, the backend and the sample, so
a changed prompt or image is asked again and nothing else is.

The dataflow's unit and prediction columns are CrossMath's; an item fills them so:
``puzzle_id`` and ``name`` hold the item id (what results are joined on), ``style`` the
task's name, ``modality`` ``task`` (so failures are counted as ``task/<task>``), ``grid`` and
``difficulty`` are empty, and ``options`` holds the letters of a multiple-choice question for
rule-based backends (``model=random`` guesses one).

Every reply is scored by the task's rules (``rule``) and by its official evaluation
(``official``): MMMU's script, ported, on the same replies; MathVerse's judge, when
``task.judge`` names a model, in two more rounds (``crossmath.tasks.mathverse.rounds``: a
``RoundJudge``). A failed request is no answer: wrong under both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import pyarrow as pa

from crossmath.core.dataset_ref import DatasetRef
from crossmath.core.errors import ConfigError
from crossmath.core.fingerprints import digest
from crossmath.core.requests import TEXT_UNIT, request_id
from crossmath.tasks.prediction_table import PredictionTable, judged_prediction_table
from crossmath.tasks.questions import AskContext, Reference, data_label
from crossmath.tasks.transfer.item import Judgement, Reply, TaskItem
from crossmath.tasks.transfer.scorings import (
    SKIPPED_ITEMS,
    UNJUDGED,
    ReplyJudge,
    TaskScores,
    rule_judgements,
    score_replies,
)
from crossmath.tasks.transfer.tallies import TaskSummary

log = logging.getLogger(__name__)

TASK_MODALITY = "task"  # the ``modality`` of a transfer task's requests and predictions
ITEMS_FILE = "items.parquet"

Key = tuple[str, int]  # (item id, sample): one reply


class RoundJudge(Protocol):
    """A judge model that gives a task's official verdicts in rounds after the model's."""

    model_config: dict[str, Any]  # the judge's resolved model config
    prompt_id: str  # its prompts' id, recorded with its predictions
    n_rounds: int

    def settings(self) -> dict[str, Any]:
        """What of the judge the evaluation's identity hashes."""
        ...

    def units(self, round_index: int, task: str, items: Mapping[str, TaskItem],
              answered: pa.Table, reply_modality: str) -> list[dict]:
        """The judge requests of round ``round_index`` (1 ... ``n_rounds``), planned from
        the predictions of the rounds before it; the model's replies have ``reply_modality``."""
        ...

    def verdicts(self, predictions: pa.Table, keys: Sequence[Key]
                 ) -> tuple[list[Judgement], int]:
        """The official verdict on each reply ``keys`` names, and how many of the judge's
        verdicts could not be read (scored wrong)."""
        ...


class Transfer(ReplyJudge, Protocol):
    """A transfer task as its questions use it (``crossmath.tasks.transfer.task``)."""

    hub_repo: str

    def read(self, path: str | None = None, *, cache_dir: str | None = None) -> Any:
        """The task's items (``TaskData``)."""
        ...

    def round_judge(self, options: Mapping[str, Any], context: AskContext) -> RoundJudge | None:
        """The judge model the options name, where the official scoring is a judge's."""
        ...


@dataclass(frozen=True)
class TransferScores:
    """A transfer task's tallies under both scorings, and the rows skipped as unreadable."""

    scores: TaskScores
    skipped: tuple[str, ...] = ()

    @property
    def summary(self) -> TaskSummary:
        """The ``rule`` scoring's tallies (the default scoring)."""
        return self.scores.rule

    def to_dict(self) -> dict[str, Any]:
        return {"transfer": self.scores.to_dict(), "skipped_items": list(self.skipped)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TransferScores":
        """The scores back from ``metrics.json`` (``to_dict``)."""
        return cls(TaskScores.from_dict(data["transfer"]), tuple(data.get("skipped_items", ())))

    def flat_metrics(self, model: str) -> dict[str, float]:
        return self.scores.flat_metrics()


def transfer_questions(task: Transfer, context: AskContext) -> "TaskQuestions":
    """The questions of ``task`` as its options (``context.options``: the resolved ``task``
    group) say: its readable items (the first ``n``; one warning names the rows skipped), the
    breakdown fields checked against them, and the judge when one is set."""
    options = context.options
    data = task.read(options.get("path"), cache_dir=options.get("cache_dir"))
    if data.warning():
        log.warning("%s", data.warning())
    n = options.get("n")
    items = data.items[:n]
    breakdown = list(options["breakdown"])
    for field_name in breakdown:
        if field_name != "question_type" and any(field_name not in item.breakdown
                                                 for item in items):
            raise ConfigError("task.breakdown", f"{task.name} items have no field "
                              f"{field_name!r}; they have {sorted(items[0].breakdown)} and "
                              "question_type")
    data_name = task.name if n is None else f"{task.name}-n{n}"
    return TaskQuestions(task, items, data.skipped, context.samples, context.backend_id,
                         breakdown, data_name, task.round_judge(options, context),
                         path=options.get("path"))


class TaskQuestions:
    """The ``items`` of ``task`` (``skipped``: the rows that could not be made items), each
    asked ``samples`` times of the backend ``backend_id``; tallied per value of each of
    ``breakdown`` (item breakdown fields, or ``question_type``). With a ``judge``, its rounds
    follow the model's (MathVerse's official scoring). ``path`` is the local copy the items
    were read from (None: the Hub)."""

    def __init__(self, task: Transfer, items: Sequence[TaskItem], skipped: Sequence[str],
                 samples: int, backend_id: str, breakdown: Sequence[str], data_name: str,
                 judge: RoundJudge | None = None, path: str | None = None) -> None:
        self.path = path
        self.task = task
        self.items = list(items)
        self.skipped = tuple(skipped)
        self.samples = samples
        self.backend_id = backend_id
        self.breakdown = tuple(breakdown)
        self.data_name = data_name
        self.judge = judge
        self.prompt_id = self.task.name  # each task's prompts are its own (docs/transfer.md)
        self.n_rounds = 1 + (0 if judge is None else judge.n_rounds)

    def settings(self) -> dict[str, Any]:
        task = {"name": self.task.name, "samples": self.samples, "items": self.fingerprint}
        if self.judge is not None:
            task["judge"] = self.judge.settings()
        return {"task": task}

    @property
    def fingerprint(self) -> str:
        """Identifies the items as asked and judged: ids, content, gold, option letters and
        the fields the official scoring reads."""
        return digest([[item.item_id, item.content_key, list(item.gold), list(item.letters),
                        dict(item.official_fields)] for item in self.items])

    def tags(self) -> dict[str, str]:
        return {"dataset": self.data_name, "task": self.task.name}

    def round_backend(self, round_index: int) -> tuple[dict[str, Any], str] | None:
        """The judge's model config and prompt id for the judge rounds; None for the
        evaluated model's round."""
        if round_index == 0 or self.judge is None:
            return None
        return self.judge.model_config, self.judge.prompt_id

    def follow_ups(self, round_index: int) -> None:
        """The judge's rounds are another model's: each waits for the round before it."""
        return None

    def units(self, round_index: int, answered: pa.Table) -> list[dict]:
        if round_index == 0:
            return [self._unit(item) for item in self.items]
        items = {item.item_id: item for item in self.items}
        return self.judge.units(round_index, self.task.name, items, answered, TASK_MODALITY)

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
        replies = self.replies(predictions)
        notes: dict[str, float] = {SKIPPED_ITEMS: len(self.skipped)}
        official = None
        if self.judge is not None:
            official, notes[UNJUDGED] = self.judge.verdicts(
                predictions, [(reply.item.item_id, reply.sample) for reply in replies])
        return TransferScores(score_replies(self.task, replies, self.breakdown,
                                            official=official, notes=notes), self.skipped)

    def replies(self, predictions: pa.Table) -> list[Reply]:
        """Every sample of every item's reply, items in dataset order (a failed request's
        output None)."""
        outputs: dict[tuple[str, int], str | None] = {}
        for row in predictions.select(["puzzle_id", "sample", "modality", "output",
                                       "error"]).to_pylist():
            if row["modality"] == TASK_MODALITY:
                outputs[(row["puzzle_id"], row["sample"])] = (
                    None if row["error"] is not None else row["output"] or "")
        return [Reply(item, sample, outputs.get((item.item_id, sample)))
                for item in self.items for sample in range(self.samples)]

    def reference(self) -> Reference:
        """The items as judged (ids, gold, type, options, breakdown, content keys), without
        their images."""
        rows = [{k: v for k, v in item.to_row().items() if k != "images"} for item in self.items]
        return Reference(ITEMS_FILE, pa.Table.from_pylist(rows))

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
        """The model's replies judged by ``rule``, without images (a task's images are its
        items', often large); the judge rounds' own requests are left out."""
        items = {item.item_id: item for item in self.items}
        rows = [row for row in predictions.to_pylist() if row["modality"] == TASK_MODALITY]
        replies = [Reply(items[row["puzzle_id"]], row["sample"],
                         None if row["error"] is not None else row["output"] or "")
                   for row in rows]
        return judged_prediction_table(
            (row, judgement.answer, judgement.correct, " | ".join(reply.item.gold))
            for row, reply, judgement in zip(rows, replies,
                                             rule_judgements(self.task, replies)))
