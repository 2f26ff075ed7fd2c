"""Crossword layouts: where the equations go, before any number is chosen.

Equations are placed one at a time, each new one crossing exactly one number cell of an
equation already placed, perpendicular to it. The usual crossword rules keep the grid
readable: a new cell may not touch any cell outside its own equation, and the cells just
before and after an equation stay empty, so no run of cells reads as an equation that was not
placed. Layouts are therefore trees of equations, which is what lets values be chosen one
equation at a time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from crossmath.puzzle.grid import Direction, Position

NUMBER_SLOTS = (0, 2, 4)  # offsets of a, b and c within an equation's five cells


@dataclass(frozen=True)
class PlacedEquation:
    direction: Direction
    start: Position

    def cell(self, offset: int) -> Position:
        r, c = self.start
        return (r, c + offset) if self.direction == "across" else (r + offset, c)

    @property
    def cells(self) -> tuple[Position, ...]:
        return tuple(self.cell(i) for i in range(5))


@dataclass
class Layout:
    """Placed equations in placement order; ``parent[i]`` is (equation, slot) that i crosses."""

    equations: list[PlacedEquation]
    crossings: list[tuple[int, int, int] | None]  # (parent index, parent slot, own slot)

    def occupied(self) -> set[Position]:
        return {cell for eq in self.equations for cell in eq.cells}

    def bounds(self) -> tuple[int, int, int, int]:
        cells = self.occupied()
        rows = [r for r, _ in cells]
        cols = [c for _, c in cells]
        return min(rows), min(cols), max(rows), max(cols)


def _neighbours(position: Position):
    r, c = position
    return ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))


def _fits(candidate: PlacedEquation, crossing: Position, occupied: set[Position],
          max_side: int, bounds: tuple[int, int, int, int]) -> bool:
    own = set(candidate.cells)
    for cell in candidate.cells:
        if cell == crossing:
            continue
        if cell in occupied:
            return False
        if any(n in occupied and n not in own for n in _neighbours(cell)):
            return False
    dr, dc = (0, 1) if candidate.direction == "across" else (1, 0)
    r, c = candidate.start
    if (r - dr, c - dc) in occupied or (r + 5 * dr, c + 5 * dc) in occupied:
        return False
    top, left, bottom, right = _grow(bounds, candidate.cells)
    return bottom - top < max_side and right - left < max_side


def _grow(bounds: tuple[int, int, int, int], cells) -> tuple[int, int, int, int]:
    top, left, bottom, right = bounds
    for r, c in cells:
        top, left, bottom, right = min(top, r), min(left, c), max(bottom, r), max(right, c)
    return top, left, bottom, right


def random_layout(rng: random.Random, n_equations: int, *, max_side: int = 21,
                  max_tries_per_equation: int = 30) -> Layout | None:
    """A tree of ``n_equations`` crossing equations, or None if the dice painted it into a corner."""
    first_direction: Direction = rng.choice(("across", "down"))
    layout = Layout([PlacedEquation(first_direction, (0, 0))], [None])
    occupied = layout.occupied()
    bounds = layout.bounds()
    crossed: set[Position] = set()
    while len(layout.equations) < n_equations:
        for _ in range(max_tries_per_equation):
            parent_index = rng.randrange(len(layout.equations))
            parent = layout.equations[parent_index]
            parent_slot = rng.choice(NUMBER_SLOTS)
            crossing = parent.cell(parent_slot)
            if crossing in crossed:
                continue
            own_slot = rng.choice(NUMBER_SLOTS)
            r, c = crossing
            if parent.direction == "across":
                candidate = PlacedEquation("down", (r - own_slot, c))
            else:
                candidate = PlacedEquation("across", (r, c - own_slot))
            if _fits(candidate, crossing, occupied, max_side, bounds):
                layout.equations.append(candidate)
                layout.crossings.append((parent_index, parent_slot, own_slot))
                occupied.update(candidate.cells)
                crossed.add(crossing)
                bounds = _grow(bounds, candidate.cells)
                break
        else:
            return None
    return layout
