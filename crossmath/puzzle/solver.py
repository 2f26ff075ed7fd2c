"""Solving a grid: wave propagation (the release's step labels) and a complete search.

Wave propagation is how the release labels difficulty: wave 1 fills every blank that is the
only unknown of an equation whose other cells are known; wave K fills the blanks that become
such an unknown once waves before K are filled. A value found this way is *forced*: every
solution of the grid has it.

The complete search decides uniqueness for any grid, including ones where propagation
stalls: depth-first search over the values of one unknown at a time, propagating after each
choice, counting solutions up to a limit. Domains are bounded (``value_bound``) because the
puzzle's numbers are unbounded non-negative integers in principle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from crossmath.puzzle.grid import Equation, Grid, Position, evaluate, format_equation

Status = Literal["unique", "multiple", "none"]

DEFAULT_VALUE_BOUND = 999


class Contradiction(Exception):
    """An equation whose known cells cannot hold together."""

    def __init__(self, equation: Equation, values: tuple[int | None, int | None, int | None]):
        self.equation = equation
        self.values = values
        a, b, c = (("?" if v is None else str(v)) for v in values)
        super().__init__(
            f"{equation.direction} equation at row {equation.start[0] + 1}, column "
            f"{equation.start[1] + 1} cannot hold: {a}{equation.operator}{b}={c}"
        )


def solve_one_unknown(
    equation: Equation, a: int | None, b: int | None, c: int | None
) -> int | None:
    """The unique value of the single unknown among (a, b, c), or None if it is not forced.

    Raises Contradiction when no non-negative integer fits. Returns None when several do
    (``0 × ? = 0``, ``0 ÷ ? = 0``), since propagation must only write forced values.
    """
    op = equation.operator
    unknowns = (a is None) + (b is None) + (c is None)
    if unknowns != 1:
        raise ValueError("exactly one unknown expected")
    value: int | None
    if c is None:
        value = evaluate(a, op, b)  # type: ignore[arg-type]
    elif a is None:
        assert b is not None
        if op == "+":
            value = c - b if c >= b else None
        elif op == "-":
            value = c + b
        elif op == "×":
            if b == 0:
                if c == 0:
                    return None  # any a
                value = None
            else:
                value = c // b if c % b == 0 else None
        else:  # ÷: a = c·b, needs b ≠ 0
            value = c * b if b else None
    else:
        assert a is not None
        if op == "+":
            value = c - a if c >= a else None
        elif op == "-":
            value = a - c if a >= c else None
        elif op == "×":
            if a == 0:
                if c == 0:
                    return None
                value = None
            else:
                value = c // a if c % a == 0 else None
        else:  # ÷: a ÷ b = c
            if c == 0:
                if a == 0:
                    return None  # any b ≠ 0
                value = None
            else:
                value = a // c if a % c == 0 and a // c > 0 else None
    if value is None:
        raise Contradiction(equation, (a, b, c))
    return value


@dataclass
class Propagation:
    """What wave propagation found.

    ``values`` holds every number cell it could fill (givens included), ``steps`` the wave
    of each filled blank, ``equation_steps`` the wave in which each equation became fully
    known (0 for equations given complete), ``unsolved`` the blanks left open.
    """

    values: dict[Position, int]
    steps: dict[Position, int]
    equation_steps: dict[Equation, int]
    unsolved: tuple[Position, ...]
    contradiction: Contradiction | None = None

    @property
    def solved(self) -> bool:
        return not self.unsolved and self.contradiction is None

    @property
    def depth(self) -> int:
        return max(self.steps.values(), default=0)


def _cell_values(equation: Equation, values: dict[Position, int]):
    return tuple(values.get(p) for p in equation.cells)


def propagate(grid: Grid, values: dict[Position, int] | None = None) -> Propagation:
    """Fill blanks wave by wave. Within a wave, every deduction uses only earlier waves."""
    values = dict(grid.known_values() if values is None else values)
    equations = grid.equations
    steps: dict[Position, int] = {}
    equation_steps: dict[Equation, int] = {}
    open_equations = []
    for eq in equations:
        if all(v is not None for v in _cell_values(eq, values)):
            equation_steps[eq] = 0
        else:
            open_equations.append(eq)
    wave = 0
    contradiction: Contradiction | None = None
    try:
        _check_complete(equations, values)
        while open_equations:
            wave += 1
            found: dict[Position, int] = {}
            for eq in open_equations:
                cell_values = _cell_values(eq, values)
                if sum(v is None for v in cell_values) != 1:
                    continue
                value = solve_one_unknown(eq, *cell_values)
                if value is None:
                    continue
                position = eq.cells[cell_values.index(None)]
                if found.setdefault(position, value) != value:
                    raise Contradiction(eq, cell_values)
            if not found:
                break
            values.update(found)
            for position in found:
                steps[position] = wave
            still_open = []
            for eq in open_equations:
                cell_values = _cell_values(eq, values)
                if all(v is not None for v in cell_values):
                    _check_equation(eq, cell_values)
                    equation_steps[eq] = wave
                else:
                    still_open.append(eq)
            open_equations = still_open
    except Contradiction as error:
        contradiction = error
    cells = set(grid.blanks).union(*(eq.cells for eq in equations))
    unsolved = tuple(sorted(p for p in cells if p not in values))
    return Propagation(values, steps, equation_steps, unsolved, contradiction)


def _check_equation(eq: Equation, cell_values) -> None:
    a, b, c = cell_values
    if evaluate(a, eq.operator, b) != c:
        raise Contradiction(eq, cell_values)


def _check_complete(equations, values: dict[Position, int]) -> None:
    for eq in equations:
        cell_values = _cell_values(eq, values)
        if all(v is not None for v in cell_values):
            _check_equation(eq, cell_values)


@dataclass
class SearchResult:
    """Outcome of the complete search: ``solutions`` holds up to ``limit`` of them."""

    status: Status
    solutions: list[dict[Position, int]] = field(default_factory=list)
    nodes: int = 0


def search_solutions(
    grid: Grid, *, limit: int = 2, value_bound: int = DEFAULT_VALUE_BOUND
) -> SearchResult:
    """Every solution (up to ``limit``), branching over values in ``[0, value_bound]``.

    Forced values are taken whatever their size; only a blank that no equation forces is
    tried over the bounded range. Two solutions found prove the grid is not unique; an
    exhausted search with one proves it is (within the bound, for unforced blanks).
    """
    result = SearchResult(status="none")
    blanks = grid.blanks
    equations = grid.equations

    def visit(values: dict[Position, int]) -> None:
        result.nodes += 1
        state = propagate(grid, values)
        if state.contradiction is not None:
            return
        if not state.unsolved:
            result.solutions.append({p: state.values[p] for p in blanks})
            return
        branch_cell = _branching_cell(equations, state.values, state.unsolved)
        for value in range(value_bound + 1):
            visit({**state.values, branch_cell: value})
            if len(result.solutions) >= limit:
                return

    visit(grid.known_values())
    result.status = (
        "none" if not result.solutions else "unique" if len(result.solutions) == 1 else "multiple"
    )
    return result


def _branching_cell(equations, values: dict[Position, int], unsolved) -> Position:
    """An unknown in the equation with the fewest unknowns: fixing it most often forces more."""
    best: tuple[int, Position] | None = None
    for eq in equations:
        open_cells = [p for p in eq.cells if p not in values]
        if open_cells and (best is None or len(open_cells) < best[0]):
            best = (len(open_cells), open_cells[0])
    return best[1] if best else unsolved[0]


def equation_text(eq: Equation, values: dict[Position, int]) -> str:
    a, b, c = (values[p] for p in eq.cells)
    return format_equation(a, eq.operator, b, c)
