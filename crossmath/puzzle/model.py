"""A puzzle with its gold answer: the unit every other layer passes around."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from crossmath.puzzle.grid import Grid, Position, format_markdown_table
from crossmath.puzzle.solver import Propagation, equation_text

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")


def grid_fingerprint(markdown_table: str) -> str:
    """Stable id of a puzzle: a hash of its canonical markdown grid."""
    return hashlib.sha256(markdown_table.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Puzzle:
    """A blank grid, its unique solution and the wave in which each blank is solved.

    ``solution`` and ``steps`` are keyed by blank position; ``answer`` lists the gold
    tokens in the release's row-major order.
    """

    grid: Grid
    solution: dict[Position, int]
    steps: dict[Position, int]
    difficulty: str
    value_range: tuple[int, int]
    operators: str = "+-*/"
    source: str = "generated"
    seed: int | None = None
    name: str = ""
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_propagation(cls, grid: Grid, propagation: Propagation, **kwargs) -> "Puzzle":
        return cls(
            grid=grid,
            solution={p: propagation.values[p] for p in grid.blanks},
            steps={p: propagation.steps[p] for p in grid.blanks},
            **kwargs,
        )

    @property
    def markdown_table(self) -> str:
        return self.grid.to_markdown()

    @property
    def puzzle_id(self) -> str:
        return grid_fingerprint(self.markdown_table)

    @property
    def answer(self) -> list[str]:
        return [str(self.solution[p]) for p in self.grid.blanks]

    @property
    def step_labels(self) -> list[int]:
        return [self.steps[p] for p in self.grid.blanks]

    @property
    def depth(self) -> int:
        return max(self.steps.values(), default=0)

    @property
    def problems(self) -> int:
        return len(self.grid.equations)

    def all_values(self) -> dict[Position, int]:
        return {**self.grid.known_values(), **self.solution}

    def solved_grid(self) -> Grid:
        return self.grid.with_values(self.solution)

    def answer_markdown(self) -> str:
        """The release's ``markdown_answer``: the grid's shape, only the blanks' values."""
        return self._blank_overlay({p: str(v) for p, v in self.solution.items()})

    def steps_markdown(self) -> str:
        """The release's ``markdown_answer_step``: each blank's ``stepK``."""
        return self._blank_overlay({p: f"step{k}" for p, k in self.steps.items()})

    def _blank_overlay(self, texts: dict[Position, str]) -> str:
        rows = [
            [texts.get((r, c), "") for c in range(self.grid.n_cols)]
            for r in range(self.grid.n_rows)
        ]
        return format_markdown_table(rows)

    def solutions_text(self) -> str:
        """The release's ``solutions``: solved equations, across then down."""
        values = self.all_values()
        across = [equation_text(eq, values) for eq in self.grid.equations if eq.direction == "across"]
        down = [equation_text(eq, values) for eq in self.grid.equations if eq.direction == "down"]
        return "Across\n" + "\n".join(across) + "\n\nDown\n" + "\n".join(down)

    def solving_steps(self) -> dict[str, list[str]]:
        """The release's ``solving_steps``: each equation under the wave that completes it.

        An equation is complete in the wave of its latest blank; within a wave the order is
        that of ``solutions`` (across, then down).
        """
        values = self.all_values()
        by_wave: dict[int, list[str]] = {}
        for eq in self.grid.equations:
            wave = max((self.steps[p] for p in eq.cells if p in self.steps), default=0)
            by_wave.setdefault(wave, []).append(equation_text(eq, values))
        return {f"step{k}": by_wave[k] for k in sorted(by_wave)}
