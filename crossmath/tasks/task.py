"""What every transfer task is: a loader of its published files, and a judge of replies.

A task turns each row of its dataset into a finished :class:`TaskItem` (``item``) and judges
a model's raw reply to an item (``judge``). Loading is shared: a local path (a file, or a
folder searched for the dataset's files) or, without one, the files fetched from the Hugging
Face Hub; every item id must be unique within the task, so results can be joined on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Mapping, Sequence

from crossmath.tasks.choices import read_choice
from crossmath.tasks.item import Judgement, QuestionType, TaskItem
from crossmath.tasks.published import (
    ParquetRow,
    TaskDataError,
    download_files,
    local_files,
    read_rows,
)


class TransferTask(ABC):
    """A benchmark beside CrossMath, read from its published parquet files.

    Subclasses name the dataset (``hub_repo``, the files to fetch, the file name pattern of a
    local copy, the columns they need) and build items and judge replies.
    """

    name: ClassVar[str]
    hub_repo: ClassVar[str]
    hub_patterns: ClassVar[tuple[str, ...]]
    file_pattern: ClassVar[str]
    path_hint: ClassVar[str]  # what to pass as a local path, for the offline message
    columns: ClassVar[tuple[str, ...]]
    optional_columns: ClassVar[tuple[str, ...]] = ()
    row_filter: ClassVar[tuple[str, str] | None] = None

    def load(self, path: str | Path | None = None, *, cache_dir: str | None = None
             ) -> list[TaskItem]:
        """Every item of the task, in file order; ``path`` None fetches the files from the Hub.

        Raises ``TaskDataError`` naming the file, row and column of anything unusable.
        """
        if path is None:
            root = download_files(self.name, self.hub_repo, self.hub_patterns, self.path_hint,
                                  cache_dir)
        else:
            root = Path(path).expanduser()
        items: list[TaskItem] = []
        seen: dict[str, str] = {}
        for file in local_files(self.name, root, self.file_pattern):
            for row in read_rows(file, self.columns, optional=self.optional_columns,
                                 where=self.row_filter):
                item = self.item(row)
                where = f"{row.source}: row {row.number}"
                if item.item_id in seen:
                    raise TaskDataError(f"{where}: item id {item.item_id!r} repeats the one at "
                                        f"{seen[item.item_id]}")
                seen[item.item_id] = where
                items.append(item)
        if not items:
            kept = "" if self.row_filter is None else " with {}={!r}".format(*self.row_filter)
            raise TaskDataError(f"task {self.name}: no rows{kept} in the files under {root}")
        return items

    @abstractmethod
    def item(self, row: ParquetRow) -> TaskItem:
        """The finished item of one dataset row; ``TaskDataError`` if the row is unusable."""

    @abstractmethod
    def judge(self, item: TaskItem, output: str) -> Judgement:
        """How a model's raw reply to ``item`` scores; never raises on any reply text."""


def read_question_type(row: ParquetRow, types: Mapping[str, QuestionType]) -> QuestionType:
    """The row's ``question_type``, translated by ``types`` (the dataset's name -> ours)."""
    kind = row.text("question_type")
    if kind not in types:
        raise row.error(f"unknown question type {kind!r}; expected one of {sorted(types)}",
                        "question_type")
    return types[kind]


def judge_choice(item: TaskItem, output: str) -> Judgement:
    """A multiple-choice reply: the option letter it chose, right if it is a gold letter."""
    letter = read_choice(output, item.options)
    return Judgement(letter, letter is not None and letter in item.gold)


def option_letters(count: int) -> Sequence[str]:
    """The first ``count`` option letters, A, B, C, ..."""
    return [chr(ord("A") + index) for index in range(count)]
