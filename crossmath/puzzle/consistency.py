"""Checking official-format records: is each one the puzzle it claims to be?

A record passes when its grid parses, its own answer satisfies every equation, its
``solutions`` text is the grid solved, the complete search finds exactly one solution and that
solution and its wave labels are the record's. Anything else is flagged with the reason, so a
defective record (the release has a few whose grid was transcribed wrongly) can be excluded or
reported rather than silently scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from crossmath.puzzle.grid import GridFormatError, evaluate, parse_markdown_grid
from crossmath.puzzle.records import OfficialRecord, iter_record_lines
from crossmath.puzzle.solver import equation_text, propagate, search_solutions

Status = Literal["ok", "unreadable", "contradiction", "ambiguous", "unsolvable", "mismatch"]
# When a record has several problems, the line reports the most fundamental one first.
SEVERITY: tuple[Status, ...] = ("unreadable", "contradiction", "unsolvable", "ambiguous", "mismatch")


@dataclass
class LintResult:
    """One record's verdict; ``number`` counts records in the file, ``line`` its lines."""

    source: str
    line: int
    number: int
    name: str
    problems: list[tuple[Status, str]] = field(default_factory=list)
    solver_agrees: bool = False  # the grid's unique solution is the record's answer

    @property
    def status(self) -> Status:
        if not self.problems:
            return "ok"
        return min((s for s, _ in self.problems), key=SEVERITY.index)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        """``<file>:<line>: record <n> [<name>] <status>: <reasons>``, a flagged record's line."""
        reasons = "; ".join(reason for _, reason in sorted(
            self.problems, key=lambda p: SEVERITY.index(p[0])))
        name = f" {self.name}" if self.name else ""
        return f"{self.source}:{self.line}: record {self.number}{name} {self.status}: {reasons}"


def lint_record(record: OfficialRecord) -> LintResult:
    result = LintResult(record.source, record.line, record.number, record.name)
    flag = result.problems.append
    try:
        puzzle = record.to_puzzle()
    except GridFormatError as error:
        flag(("unreadable", _inside_record(error)))
        return result
    grid = puzzle.grid
    values = puzzle.all_values()

    for eq in grid.equations:
        text = equation_text(eq, values)
        a, b, c = (values[p] for p in eq.cells)
        if evaluate(a, eq.operator, b) != c:
            flag(("contradiction", f"the record's answer breaks {eq.direction} equation {text} "
                                   f"at row {eq.start[0] + 1}, column {eq.start[1] + 1}"))

    solutions = record.fields.get("solutions")
    if isinstance(solutions, str):
        stated = [line.strip() for line in solutions.splitlines() if "=" in line]
        try:
            normalised = [_normalise_equation(line) for line in stated]
        except GridFormatError as error:
            flag(("unreadable", f"field 'solutions': {error.reason}"))
            return result
        derived = [equation_text(eq, values) for eq in grid.equations]
        if sorted(normalised) != sorted(derived):
            only_grid = sorted(set(derived) - set(normalised))
            only_text = sorted(set(normalised) - set(derived))
            flag(("contradiction", "grid and solutions text disagree: grid gives "
                  f"{', '.join(only_grid) or '-'}, solutions say {', '.join(only_text) or '-'}"))

    search = search_solutions(grid, limit=2)
    if search.status == "none":
        flag(("unsolvable", "no assignment of the blanks satisfies every equation"))
    elif search.status == "multiple":
        first, second = (" ".join(str(s[p]) for p in grid.blanks) for s in search.solutions[:2])
        flag(("ambiguous", f"several solutions, e.g. [{first}] and [{second}]"))
    else:
        solved = [str(search.solutions[0][p]) for p in grid.blanks]
        result.solver_agrees = solved == puzzle.answer
        if solved != puzzle.answer:
            flag(("mismatch", f"the unique solution is [{' '.join(solved)}], the record says "
                              f"[{' '.join(puzzle.answer)}]"))
        propagation = propagate(grid)
        if propagation.solved:
            labels = [propagation.steps[p] for p in grid.blanks]
            recorded = record.step_labels()
            if recorded is not None and labels != recorded:
                flag(("mismatch", f"step labels by propagation {labels}, the record says {recorded}"))
        else:
            flag(("mismatch", "propagation stalls: the puzzle needs search, so step labels "
                              "are undefined"))
    return result


def _normalise_equation(text: str) -> str:
    """A solutions line with the operator spelled canonically (the release mixes x and ×)."""
    grid = parse_markdown_grid("| " + " | ".join(_tokens(text)) + " |")
    return "".join(grid.cells[0])


def _tokens(text: str) -> list[str]:
    tokens, number = [], ""
    for char in text.replace(" ", ""):
        if char.isdigit():
            number += char
        else:
            if number:
                tokens.append(number)
                number = ""
            tokens.append(char)
    if number:
        tokens.append(number)
    return tokens


def _inside_record(error: GridFormatError) -> str:
    """The error less its file and line, which a lint line names already."""
    return str(GridFormatError(error.reason, field=error.field, row=error.row,
                               column=error.column))


def lint_jsonl(path: str | Path) -> list[LintResult]:
    """Lint every line of a file; a line that is not a record is flagged unreadable."""
    results = []
    for number, item in enumerate(iter_record_lines(path), start=1):
        if isinstance(item, GridFormatError):
            results.append(LintResult(str(path), item.line or 0, number, "",
                                      [("unreadable", _inside_record(item))]))
        else:
            results.append(lint_record(item))
    return results


class LintPathError(ValueError):
    """A path to lint that is missing, or a folder without the release's jsonl files."""


RELEASE_JSONL_PATTERN = "testset_*.jsonl"


def jsonl_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a JSONL file at all (empty, binary, no line of JSON), or None.

    A JSONL file with bad lines is still one: lint flags those lines one by one.
    """
    data = Path(path).read_bytes()
    if not data.strip():
        return "is empty"
    if b"\0" in data[:8192]:
        return "is not a JSONL file (it holds binary data)"
    if not any(isinstance(item, OfficialRecord) or "not valid JSON" not in item.reason
               for item in iter_record_lines(path)):
        return "is not a JSONL file (no line of it is JSON)"
    return None


def release_jsonl_files(path: str | Path) -> list[Path]:
    """The files ``path`` names: itself if a file; if a folder, every ``testset_*.jsonl`` in it
    and in its style subfolders (the release's layout, ``Original/testset_hr.jsonl`` ...)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise LintPathError(f"{path} does not exist")
    files = sorted([*path.glob(RELEASE_JSONL_PATTERN), *path.glob(f"*/{RELEASE_JSONL_PATTERN}")])
    if not files:
        raise LintPathError(f"{path} holds no {RELEASE_JSONL_PATTERN}, neither itself nor in a "
                            "style subfolder (e.g. Original/testset_hr.jsonl)")
    return files


@dataclass(frozen=True)
class Consistency:
    """What lint says of an official set's records: those it flags (kept, as the release keeps
    them), and the oracle's ceiling, the share of puzzles whose grid's unique solution is the
    recorded answer (what the solver, hence the text modality at best, can score)."""

    n_records: int
    flagged: tuple[tuple[str, str, str], ...]  # (puzzle id, name, status) of each flagged one
    oracle_ceiling: float  # percent

    @property
    def flagged_ids(self) -> frozenset[str]:
        return frozenset(puzzle_id for puzzle_id, _, _ in self.flagged)

    def summary(self) -> str:
        """One line: which records lint flags and why, briefly."""
        named = ", ".join(f"{name} ({status})" for _, name, status in self.flagged)
        return (f"lint flags {len(self.flagged)} of {self.n_records} records: {named}; they are "
                "scored like the rest, as the release does (consistent/... metrics leave them "
                f"out; the oracle's ceiling is {self.oracle_ceiling:.1f}%)")

    def to_dict(self) -> dict:
        return {"n_records": self.n_records, "oracle_ceiling": self.oracle_ceiling,
                "flagged": [{"puzzle_id": pid, "name": name, "status": status}
                            for pid, name, status in self.flagged]}

    @classmethod
    def from_dict(cls, data: dict) -> "Consistency":
        return cls(int(data["n_records"]),
                   tuple((f["puzzle_id"], f["name"], f["status"]) for f in data["flagged"]),
                   float(data["oracle_ceiling"]))
