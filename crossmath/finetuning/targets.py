"""What the model is taught to answer: a short rationale from the solver's waves, then the answer.

The rationale walks the propagation waves in order. For each blank of wave K (row-major within
the wave) it names the equation that pins it down: one whose other cells are given or were
solved in an earlier wave, written with the blank as ``?`` and earlier blanks filled in::

    Step 1: 12 + ? = 30 gives 18 (row 1, column 3).
    Step 2: 18 × ? = 36 gives 2 (row 3, column 3).
    <answer>18 2</answer>

Rows and columns count from 1, as a reader of the grid (or the image) would. The answer line is
exactly what the evaluation extracts (the last ``<answer>…</answer>``), so a model that learns
this format is scored on its values alone. ``answer_only`` drops the rationale.
"""

from __future__ import annotations

from typing import Literal

from crossmath.metrics.answers import answer_block
from crossmath.puzzle.grid import BLANK, Equation, Position
from crossmath.puzzle.model import Puzzle

TargetKind = Literal["rationale", "answer"]
TARGET_KINDS: tuple[TargetKind, ...] = ("rationale", "answer")


def deciding_equation(puzzle: Puzzle, blank: Position) -> Equation:
    """The first equation (grid order) that holds ``blank`` as its only unknown at its wave."""
    wave = puzzle.steps[blank]
    for equation in puzzle.grid.equations:
        if blank in equation.cells and all(
            puzzle.steps.get(cell, 0) < wave for cell in equation.cells if cell != blank
        ):
            return equation
    raise ValueError(
        f"puzzle {puzzle.puzzle_id}: no equation decides the blank at row {blank[0] + 1}, "
        f"column {blank[1] + 1} in wave {wave}; are its step labels from propagation?"
    )


def rationale_lines(puzzle: Puzzle) -> list[str]:
    """One line per blank, in solving order: wave, then row-major within the wave."""
    values = puzzle.all_values()
    lines = []
    for blank in sorted(puzzle.grid.blanks, key=lambda p: (puzzle.steps[p], p)):
        equation = deciding_equation(puzzle, blank)
        a, b, c = (BLANK if cell == blank else str(values[cell]) for cell in equation.cells)
        lines.append(
            f"Step {puzzle.steps[blank]}: {a} {equation.operator} {b} = {c} gives "
            f"{values[blank]} (row {blank[0] + 1}, column {blank[1] + 1})."
        )
    return lines


def target_text(puzzle: Puzzle, kind: TargetKind = "rationale") -> str:
    """The assistant's reply the model is trained on (without the end-of-turn token)."""
    if kind == "answer":
        return answer_block(puzzle.answer)
    if kind == "rationale":
        return "\n".join([*rationale_lines(puzzle), answer_block(puzzle.answer)])
    raise ValueError(f"unknown target kind {kind!r}; choose one of {TARGET_KINDS}")
