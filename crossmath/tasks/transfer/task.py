"""What every transfer task is: a loader of its published files, and a judge of replies.

A task turns each row of its dataset into a finished :class:`TaskItem` (``item``), judges a
model's raw reply to an item by our rules (``judge``, the ``rule`` scoring) and, where the
official evaluation is a rule too (MMMU), scores replies as it does (``official``). Loading
is shared: a local path (a file, or a folder searched for the dataset's files, in its own
layout or the Hub's conversion) or, without one, the files fetched from the Hugging Face Hub.
A row that cannot be made an item is skipped and named (``TaskData.skipped``); a file that
cannot be read, or an item id seen twice, stops the task (ids join results).

A transfer task is a task of the registry (``crossmath.tasks.registry``): ``questions`` makes
the main job's questions of its items (``crossmath.tasks.transfer.questions``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from crossmath.core.errors import ConfigError
from crossmath.settings.checks import existing_path, model_options, whole_number
from crossmath.tasks.questions import AskContext
from crossmath.tasks.transfer.choices import LIST_SEPARATOR, read_choice
from crossmath.tasks.transfer.item import Judgement, QuestionType, Reply, TaskItem
from crossmath.tasks.transfer.published import (
    ParquetRow,
    TaskDataError,
    UnreadableItem,
    download_files,
    local_files,
    read_rows,
)
from crossmath.tasks.transfer.questions import (
    RoundJudge,
    TaskQuestions,
    TransferScores,
    transfer_questions,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskData:
    """A task's items in file order, and the rows that could not be made items (each named
    by file, row, column and reason)."""

    task: str
    items: list[TaskItem]
    skipped: tuple[str, ...] = ()

    def warning(self) -> str | None:
        """One line naming every skipped row, or None when none was."""
        if not self.skipped:
            return None
        named = "; ".join(" ".join(reason.split()) for reason in self.skipped)
        return f"task {self.task}: skipped {len(self.skipped)} unreadable item(s): {named}"


class TransferTask(ABC):
    """A benchmark beside CrossMath, read from its published parquet files.

    Subclasses name the dataset (``hub_repo``, the files to fetch, the file name pattern of a
    local copy, the columns they need) and build items and judge replies.
    """

    name: ClassVar[str]
    hub_repo: ClassVar[str]
    hub_patterns: ClassVar[tuple[str, ...]]
    file_patterns: ClassVar[tuple[str, ...]]  # a local copy's files; the first that matches
    path_hint: ClassVar[str]  # what to pass as a local path, for the offline message
    columns: ClassVar[tuple[str, ...]]
    optional_columns: ClassVar[tuple[str, ...]] = ()
    row_filter: ClassVar[tuple[str, str] | None] = None
    official_by_judge: ClassVar[bool] = False  # the official scoring asks a judge model
    reads: ClassVar[frozenset[str]] = frozenset()  # its items are its own: no run data

    def check(self, options: Mapping[str, Any], run: Mapping[str, Any], where: str = "task"
              ) -> None:
        """Its local copy (a path that exists; null fetches it from the Hub), item count,
        breakdown and judge (a model config, only where the official scoring is a judge's,
        with its prompts file); it reads nothing of the run."""
        if options.get("path") is not None:
            existing_path(options["path"], f"{where}.path")
        whole_number(options.get("n"), f"{where}.n", none_means="every item")
        breakdown = options.get("breakdown")
        if not isinstance(breakdown, list) or not all(isinstance(f, str) for f in breakdown):
            raise ConfigError(f"{where}.breakdown",
                              f"must be a list of field names, got {breakdown!r}")
        judge = options.get("judge")
        if judge is not None:
            if not self.official_by_judge:
                raise ConfigError(f"{where}.judge", f"{self.name}'s official scoring is a rule, "
                                  "run without a judge model; leave task.judge out")
            if not isinstance(judge, Mapping):
                raise ConfigError(f"{where}.judge", "must be a model config, e.g. "
                                  f"+model@{where}.judge=openai, got {judge!r}")
            model_options(judge, f"{where}.judge")
        if options.get("judge_prompts") is not None:
            existing_path(options["judge_prompts"], f"{where}.judge_prompts")

    def questions(self, context: AskContext) -> TaskQuestions:
        """The main job's questions of this task's items, as ``context.options`` says."""
        return transfer_questions(self, context)

    def scores(self, data: Mapping[str, Any]) -> TransferScores:
        return TransferScores.from_dict(data)

    def round_judge(self, options: Mapping[str, Any], context: AskContext) -> RoundJudge | None:
        """The judge model ``options`` name, asked in rounds after the model's, where the
        official scoring is a judge's (``official_by_judge``); None otherwise."""
        return None

    def load(self, path: str | Path | None = None, *, cache_dir: str | None = None
             ) -> list[TaskItem]:
        """Every readable item of the task, in file order (one warning names the skipped
        rows); ``path`` None fetches the files from the Hub."""
        data = self.read(path, cache_dir=cache_dir)
        if data.warning():
            log.warning("%s", data.warning())
        return data.items

    def read(self, path: str | Path | None = None, *, cache_dir: str | None = None) -> TaskData:
        """The items and the skipped rows; ``TaskDataError`` for a file that cannot be read,
        an item id seen twice, or no readable item at all."""
        if path is None:
            root = download_files(self.name, self.hub_repo, self.hub_patterns, self.path_hint,
                                  cache_dir)
        else:
            root = Path(path).expanduser()
        items: list[TaskItem] = []
        skipped: list[str] = []
        seen: dict[str, str] = {}
        for file in local_files(self.name, root, self.file_patterns):
            for row in read_rows(file, self.columns, optional=self.optional_columns,
                                 where=self.row_filter):
                try:
                    item = self.item(row)
                except UnreadableItem as error:
                    skipped.append(str(error))
                    continue
                where = f"{row.source}: row {row.number}"
                if item.item_id in seen:
                    raise TaskDataError(f"{where}: item id {item.item_id!r} repeats the one at "
                                        f"{seen[item.item_id]}")
                seen[item.item_id] = where
                items.append(item)
        if not items:
            kept = "" if self.row_filter is None else " with {}={!r}".format(*self.row_filter)
            unreadable = f" ({len(skipped)} unreadable: {skipped[0]} ...)" if skipped else ""
            raise TaskDataError(f"task {self.name}: no readable rows{kept} in the files under "
                                f"{root}{unreadable}")
        return TaskData(self.name, items, tuple(skipped))

    @abstractmethod
    def item(self, row: ParquetRow) -> TaskItem:
        """The finished item of one dataset row; ``TaskDataError`` if the row is unusable."""

    @abstractmethod
    def judge(self, item: TaskItem, output: str) -> Judgement:
        """How a model's raw reply to ``item`` scores by our rules; never raises on any reply
        text."""

    def official(self, replies: Sequence[Reply]) -> list[Judgement] | None:
        """The official evaluation's verdict on each reply, where that evaluation is a rule
        that can run here (MMMU's); None where it is a judge model (MathVerse's, run as
        the evaluation's judge rounds)."""
        return None


def read_question_type(row: ParquetRow, types: Mapping[str, QuestionType]) -> QuestionType:
    """The row's ``question_type``, translated by ``types`` (the dataset's name -> ours)."""
    kind = row.text("question_type")
    if kind not in types:
        raise row.error(f"unknown question type {kind!r}; expected one of {sorted(types)}",
                        "question_type")
    return types[kind]


def judge_choice(item: TaskItem, output: str) -> Judgement:
    """A multiple-choice reply: the option letter(s) it chose, right if they are exactly the
    gold letters (for nearly every question, the one gold letter)."""
    answer = read_choice(output, item.options, several=item.several_correct)
    chosen = set(answer.split(LIST_SEPARATOR)) if answer else set()
    return Judgement(answer, chosen == set(item.gold))


def option_letters(count: int) -> Sequence[str]:
    """The first ``count`` option letters, A, B, C, ..."""
    return [chr(ord("A") + index) for index in range(count)]
