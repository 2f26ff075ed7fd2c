"""The columnar puzzle table of the design's data contract (Arrow / parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from crossmath.puzzle.grid import parse_markdown_grid
from crossmath.puzzle.model import Puzzle

PUZZLE_SCHEMA = pa.schema(
    [
        ("puzzle_id", pa.string()),
        ("name", pa.string()),
        ("grid", pa.string()),
        ("answer", pa.list_(pa.string())),
        ("steps", pa.list_(pa.int32())),
        ("difficulty", pa.string()),
        ("problems", pa.int32()),
        ("value_range", pa.list_(pa.int32(), 2)),
        ("operators", pa.string()),
        ("source", pa.string()),
        ("seed", pa.uint64()),
    ]
)


def puzzle_row(puzzle: Puzzle) -> dict:
    return {
        "puzzle_id": puzzle.puzzle_id,
        "name": puzzle.name,
        "grid": puzzle.markdown_table,
        "answer": puzzle.answer,
        "steps": puzzle.step_labels,
        "difficulty": puzzle.difficulty,
        "problems": puzzle.problems,
        "value_range": list(puzzle.value_range),
        "operators": puzzle.operators,
        "source": puzzle.source,
        "seed": puzzle.seed,
    }


def puzzles_to_table(puzzles: Iterable[Puzzle]) -> pa.Table:
    return pa.Table.from_pylist([puzzle_row(p) for p in puzzles], schema=PUZZLE_SCHEMA)


def puzzle_from_row(row: dict) -> Puzzle:
    grid = parse_markdown_grid(row["grid"])
    if len(row["answer"]) != len(grid.blanks):
        raise ValueError(f"puzzle {row['puzzle_id']}: {len(row['answer'])} answers for "
                         f"{len(grid.blanks)} blanks")
    return Puzzle(
        grid=grid,
        solution={p: int(v) for p, v in zip(grid.blanks, row["answer"])},
        steps=dict(zip(grid.blanks, row["steps"])),
        difficulty=row["difficulty"],
        value_range=tuple(row["value_range"]),
        operators=row["operators"],
        source=row["source"],
        seed=row["seed"],
        name=row["name"],
    )


def write_puzzle_table(puzzles: Iterable[Puzzle], path: str | Path) -> None:
    pq.write_table(puzzles_to_table(puzzles), path)


def read_puzzle_table(path: str | Path) -> list[Puzzle]:
    return [puzzle_from_row(row) for row in pq.read_table(path, schema=PUZZLE_SCHEMA).to_pylist()]
