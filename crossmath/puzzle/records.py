"""The release's jsonl records: read them (quirks included), write them back field for field."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from crossmath.puzzle.grid import Grid, GridFormatError, parse_markdown_grid, split_markdown_table
from crossmath.puzzle.model import Puzzle

REQUIRED_FIELDS = ("img_blank", "difficulty", "markdown_table", "markdown_answer")
STEP_PREFIX = "step"


@dataclass(frozen=True)
class OfficialRecord:
    """One record of an official-format jsonl, with where it came from.

    ``fields`` keeps every key of the file in its order, so writing it back reproduces the
    record exactly; ``number`` counts records (not lines) from 1.
    """

    fields: dict
    source: str
    line: int
    number: int

    @property
    def image_blank_path(self) -> Path:
        """``img_blank`` resolved against the jsonl's folder, as the release lays it out."""
        return Path(self.source).parent / self.fields["img_blank"]

    @property
    def name(self) -> str:
        """The release's puzzle name, e.g. ``math_puzzle_0003``, taken from ``img_blank``."""
        stem = Path(self.fields["img_blank"]).stem
        return stem.split("_blank")[0]

    def error(self, reason: str, field: str | None = None) -> GridFormatError:
        return GridFormatError(reason, source=self.source, line=self.line, field=field)

    def grid(self) -> Grid:
        return self._parse_table("markdown_table")

    def answer_tokens(self) -> list[str]:
        """The gold tokens, row-major, read off ``markdown_answer``."""
        grid = self._parse_table("markdown_answer")
        return [cell for row in grid.cells for cell in row if cell]

    def step_labels(self) -> list[int] | None:
        """Each gold token's wave from ``markdown_answer_step``, or None if the field is absent."""
        if "markdown_answer_step" not in self.fields:
            return None
        try:
            rows = split_markdown_table(self.fields["markdown_answer_step"])
        except GridFormatError as error:
            raise error.located(source=self.source, line=self.line, field="markdown_answer_step")
        labels = []
        for r, row in enumerate(rows, start=1):
            for c, cell in enumerate(row, start=1):
                if not cell:
                    continue
                if not (cell.startswith(STEP_PREFIX) and cell[len(STEP_PREFIX):].isdigit()):
                    raise GridFormatError(
                        f"step label {cell!r} is not of the form stepK", source=self.source,
                        line=self.line, field="markdown_answer_step", row=r, column=c,
                    )
                labels.append(int(cell[len(STEP_PREFIX):]))
        return labels

    def _parse_table(self, field: str) -> Grid:
        text = self.fields.get(field)
        if not isinstance(text, str):
            raise self.error("missing or not a string", field)
        try:
            return parse_markdown_grid(text)
        except GridFormatError as error:
            raise error.located(source=self.source, line=self.line, field=field)

    def to_puzzle(self) -> Puzzle:
        """The record as a puzzle whose gold answer and steps are the record's own."""
        grid = self.grid()
        answer = self.answer_tokens()
        if len(answer) != len(grid.blanks):
            raise self.error(
                f"markdown_answer has {len(answer)} values for {len(grid.blanks)} blanks",
                "markdown_answer",
            )
        labels = self.step_labels() or [0] * len(answer)
        if len(labels) != len(answer):
            raise self.error(
                f"{len(labels)} step labels for {len(answer)} blanks", "markdown_answer_step"
            )
        value_range = self.fields.get("range") or [0, 0]
        return Puzzle(
            grid=grid,
            solution={p: int(v) for p, v in zip(grid.blanks, answer)},
            steps=dict(zip(grid.blanks, labels)),
            difficulty=str(self.fields["difficulty"]),
            value_range=(int(value_range[0]), int(value_range[1])),
            operators=str(self.fields.get("operators", "+-*/")),
            source="official",
            name=self.name,
        )


def iter_record_lines(path: str | Path) -> Iterator[OfficialRecord | GridFormatError]:
    """Each non-blank line as a record, or as the error that stops it being one.

    Lets a caller that must see every line (lint) go on past a bad one; records are numbered
    among themselves, a bad line taking a number too.
    """
    source = str(path)
    number = 0
    with open(path, "rb") as handle:  # decoded line by line, so a bad byte names its line
        for line_number, raw in enumerate(handle, start=1):
            if line_number == 1:  # as utf-8-sig reads it: a byte-order mark is not text
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                number += 1
                yield GridFormatError(f"not UTF-8 text ({error.reason} at byte {error.start + 1} of the line)",
                                      source=source, line=line_number)
                continue
            if not line.strip():
                continue
            number += 1
            try:
                fields = json.loads(line)
            except json.JSONDecodeError as error:
                yield GridFormatError(f"not valid JSON ({json_error(error, line=False)})",
                                      source=source, line=line_number)
                continue
            if not isinstance(fields, dict):
                yield GridFormatError("a record must be a JSON object", source=source,
                                      line=line_number)
                continue
            missing = [name for name in REQUIRED_FIELDS if name not in fields]
            if missing:
                yield GridFormatError(f"missing field(s) {', '.join(missing)}", source=source,
                                      line=line_number)
                continue
            yield OfficialRecord(fields, source, line_number, number)


def json_error(error: json.JSONDecodeError, *, line: bool = True) -> str:
    """``error`` as ``<what> at line L, column C`` (without the line for one-line documents).
    Some of the json module's messages already end in "at" ("Unterminated string starting
    at"): it is not said twice."""
    where = f"line {error.lineno}, column {error.colno}" if line else f"column {error.colno}"
    return f"{error.msg.removesuffix(' at')} at {where}"


def iter_official_jsonl(path: str | Path) -> Iterator[OfficialRecord]:
    """Records of a jsonl file, skipping blank lines; a bad line raises naming file and line."""
    for item in iter_record_lines(path):
        if isinstance(item, GridFormatError):
            raise item
        yield item


def read_official_jsonl(path: str | Path) -> list[OfficialRecord]:
    return list(iter_official_jsonl(path))


@dataclass(frozen=True)
class ReleaseLayout:
    """Where the release puts one style's files, from the style's tag (``hr`` for original).

    ``Original/testset_hr.jsonl`` with ``test_images_blank_hr/math_puzzle_0003_blank.png``;
    ``Altstyle/testset_altstyle.jsonl`` with
    ``test_images_blank_altstyle/math_puzzle_0003_blank_altstyle.png``.
    """

    folder: str
    tag: str

    @property
    def jsonl_name(self) -> str:
        return f"testset_{self.tag}.jsonl"

    @property
    def _suffix(self) -> str:
        return "" if self.tag == "hr" else f"_{self.tag}"

    def image_path(self, name: str) -> str:
        return f"test_images_{self.tag}/{name}{self._suffix}.png"

    def blank_image_path(self, name: str) -> str:
        return f"test_images_blank_{self.tag}/{name}_blank{self._suffix}.png"


def record_fields(puzzle: Puzzle, layout: ReleaseLayout, name: str) -> dict:
    """The release's fields for a solved puzzle, in the release's key order."""
    return {
        "img": layout.image_path(name),
        "img_blank": layout.blank_image_path(name),
        "problems": puzzle.problems,
        "operators": puzzle.operators,
        "difficulty": puzzle.difficulty,
        "range": list(puzzle.value_range),
        "markdown_table": puzzle.markdown_table,
        "markdown_answer": puzzle.answer_markdown(),
        "markdown_answer_step": puzzle.steps_markdown(),
        "solutions": puzzle.solutions_text(),
        "solving_steps": puzzle.solving_steps(),
    }


def write_official_jsonl(records: Iterable[dict], path: str | Path) -> None:
    """Write records one JSON object a line, non-ASCII kept as is (as the release does)."""
    with open(path, "w", encoding="utf-8") as handle:
        for fields in records:
            handle.write(json.dumps(fields, ensure_ascii=False) + "\n")
