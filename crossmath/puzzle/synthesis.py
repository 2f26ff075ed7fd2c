"""Generating puzzles: layout, then values, then blanks chosen to hit a difficulty.

Difficulty is the depth of wave propagation (see ``solver``): easy puzzles are solved in one
wave, medium in 2 to 5, hard in 3 or more. Depth is built on purpose rather than hoped for:
a chain of equations e1 … eK, each crossing the next, with the crossing cells blank, can only
be solved one equation per wave. Further blanks are then added where they keep the depth.
Every puzzle returned has exactly one solution, proved by the complete search.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace

from crossmath.puzzle.grid import BLANK, EMPTY, EQUALS, Grid, Position, evaluate
from crossmath.puzzle.layout import Layout, random_layout
from crossmath.puzzle.model import DIFFICULTIES, Puzzle
from crossmath.puzzle.solver import propagate, search_solutions

ASCII_TO_OPERATOR = {"+": "+", "-": "-", "*": "×", "/": "÷"}

# Depths drawn for each difficulty, shaped after the release (medium mostly 2-3, hard 3-5).
DEPTH_WEIGHTS = {
    "easy": {1: 1.0},
    "medium": {2: 0.5, 3: 0.32, 4: 0.12, 5: 0.06},
    "hard": {3: 0.42, 4: 0.3, 5: 0.16, 6: 0.08, 7: 0.04},
}


@dataclass(frozen=True)
class GeneratorConfig:
    """What puzzles to make. ``max_value`` bounds every number; ``operators`` in ASCII (+-*/)."""

    difficulty: str = "hard"
    min_equations: int = 5
    max_equations: int = 15
    min_blanks: int = 3
    max_blanks: int = 15
    max_value: int = 250
    operators: str = "+-*/"
    max_side: int = 21
    depth_weights: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown difficulty {self.difficulty!r}; choose one of {DIFFICULTIES}")
        unknown = set(self.operators) - set(ASCII_TO_OPERATOR)
        if unknown or not self.operators:
            raise ValueError(f"operators must be a non-empty subset of '+-*/', got {self.operators!r}")
        if not 5 <= self.min_equations <= self.max_equations:
            raise ValueError("need 5 <= min_equations <= max_equations")
        if self.max_value < 10:
            raise ValueError("max_value must be at least 10")

    @property
    def depths(self) -> dict[int, float]:
        return self.depth_weights or DEPTH_WEIGHTS[self.difficulty]


def puzzle_seed(seed: int, difficulty: str, index: int) -> int:
    """The seed of the index-th puzzle of a set: independent of how the set is split up."""
    digest = hashlib.sha256(f"{seed}:{difficulty}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def generate_puzzle(config: GeneratorConfig, seed: int, *, max_attempts: int = 2000) -> Puzzle:
    """One puzzle from its own seed; the same seed always gives the same puzzle."""
    rng = random.Random(seed)
    operators = [ASCII_TO_OPERATOR[o] for o in config.operators]
    depths, weights = zip(*config.depths.items())
    # Depth and size are drawn once, before any attempt, so that the rejections that large or
    # deep puzzles suffer do not skew the set towards small, shallow ones.
    target_depth = rng.choices(depths, weights)[0]
    n_equations = rng.randint(
        max(config.min_equations, min(target_depth + 1, config.max_equations)), config.max_equations
    )
    for _ in range(max_attempts):
        layout = random_layout(rng, n_equations, max_side=config.max_side)
        if layout is None:
            continue
        lo = rng.randint(1, 4)
        hi = rng.randint(max(lo + 20, int(config.max_value * 0.35)), config.max_value)
        values = _assign_values(rng, layout, operators, lo, hi)
        if values is None:
            continue
        grid = _full_grid(layout, values)
        if len(grid.equations) != n_equations:
            continue  # a stray run read as an extra equation; layouts should prevent it
        blanks = _choose_blanks(rng, grid, target_depth, config)
        if blanks is None:
            continue
        puzzle_grid = Grid.from_rows(
            [BLANK if (r, c) in blanks else cell for c, cell in enumerate(row)]
            for r, row in enumerate(grid.cells)
        )
        if search_solutions(puzzle_grid, limit=2).status != "unique":
            continue
        propagation = propagate(puzzle_grid)
        return Puzzle.from_propagation(
            puzzle_grid,
            propagation,
            difficulty=config.difficulty,
            value_range=(lo, hi),
            operators=config.operators,
            source="generated",
            seed=seed,
        )
    raise RuntimeError(f"no {config.difficulty} puzzle found in {max_attempts} attempts (seed {seed})")


def _assign_values(rng: random.Random, layout: Layout, operators: list[str], lo: int,
                   hi: int) -> dict[Position, int] | None:
    """Numbers for every cell, one equation at a time along the layout's tree."""
    values: dict[Position, int] = {}
    ops: dict[Position, str] = {}
    for eq, crossing in zip(layout.equations, layout.crossings):
        fixed_slot = None if crossing is None else crossing[2]
        fixed = None if fixed_slot is None else values[eq.cell(fixed_slot)]
        for op in rng.sample(operators, len(operators)):
            triple = _random_triple(rng, op, fixed_slot, fixed, lo, hi)
            if triple is not None:
                break
        else:
            return None
        a, b, c = triple
        values.update({eq.cell(0): a, eq.cell(2): b, eq.cell(4): c})
        ops[eq.cell(1)] = op
    values.update(ops)  # type: ignore[arg-type]
    return values


def _random_triple(rng: random.Random, op: str, slot: int | None, fixed: int | None,
                   lo: int, hi: int) -> tuple[int, int, int] | None:
    """``(a, b, c)`` with ``a op b = c``, all in [lo, hi], the value at ``slot`` equal to ``fixed``."""
    for _ in range(12):
        if slot is None:
            a, b = rng.randint(lo, hi), rng.randint(lo, hi)
            if op == "×":
                a, b = rng.randint(lo, max(lo, hi // max(lo, 2))), rng.randint(lo, 12)
            elif op == "÷":
                b, c = rng.randint(max(lo, 2), 12), rng.randint(lo, max(lo, hi // 12))
                a = b * c
        elif slot == 0:
            a = fixed
            b = _pick_partner(rng, op, a, lo, hi, as_left=True)
        elif slot == 2:
            b = fixed
            a = _pick_partner(rng, op, b, lo, hi, as_left=False)
        else:
            a, b = _split(rng, op, fixed, lo, hi)
        if a is None or b is None:
            continue
        c = evaluate(a, op, b)
        if c is None or not (lo <= a <= hi and lo <= b <= hi and lo <= c <= hi):
            continue
        if slot == 4 and c != fixed:
            continue
        return a, b, c
    return None


def _pick_partner(rng: random.Random, op: str, known: int, lo: int, hi: int,
                  *, as_left: bool) -> int | None:
    """The other operand, given one: ``known op x`` (as_left) or ``x op known``."""
    if op == "+":
        return rng.randint(lo, hi - known) if hi - known >= lo else None
    if op == "-":
        if as_left:  # known - x >= lo
            return rng.randint(lo, known - lo) if known - lo >= lo else None
        return rng.randint(known + lo, hi) if known + lo <= hi else None
    if op == "×":
        top = hi // known if known else hi
        return rng.randint(lo, top) if top >= lo else None
    if as_left:  # known ÷ x: x must divide known
        divisors = [d for d in range(max(lo, 1), known + 1) if known % d == 0 and known // d >= lo]
        return rng.choice(divisors) if divisors else None
    top = hi // known if known else 0  # x ÷ known: x a multiple of known
    return known * rng.randint(lo, top) if top >= lo else None


def _split(rng: random.Random, op: str, c: int, lo: int, hi: int) -> tuple[int | None, int | None]:
    """Operands ``a, b`` with ``a op b = c``."""
    if op == "+":
        if c - lo < lo:
            return None, None
        a = rng.randint(lo, c - lo)
        return a, c - a
    if op == "-":
        if c + lo > hi:
            return None, None
        b = rng.randint(lo, hi - c)
        return c + b, b
    if op == "×":
        pairs = [(d, c // d) for d in range(max(lo, 1), c + 1) if c % d == 0 and c // d >= lo]
        return rng.choice(pairs) if pairs else (None, None)
    top = hi // c if c else 0
    if top < max(lo, 2):
        return None, None
    b = rng.randint(max(lo, 2), top)
    return c * b, b


def _full_grid(layout: Layout, values: dict[Position, int | str]) -> Grid:
    """The solved grid, shifted so the layout's top-left cell is (0, 0)."""
    top, left, bottom, right = layout.bounds()
    rows = [[EMPTY] * (right - left + 1) for _ in range(bottom - top + 1)]
    for eq in layout.equations:
        for offset, (r, c) in enumerate(eq.cells):
            token = EQUALS if offset == 3 else str(values[(r, c)])
            rows[r - top][c - left] = token
    return Grid.from_rows(rows)


def _choose_blanks(rng: random.Random, grid: Grid, target_depth: int,
                   config: GeneratorConfig) -> set[Position] | None:
    """Blank cells whose propagation depth is exactly ``target_depth``, every equation touched."""
    equations = grid.equations
    members: dict[Position, list[int]] = {}
    for i, eq in enumerate(equations):
        for cell in eq.cells:
            members.setdefault(cell, []).append(i)
    blanks = _chain_blanks(rng, equations, members, target_depth)
    if blanks is None or _depth(grid, blanks) != target_depth:
        return None
    cap = rng.randint(max(config.min_blanks, len(blanks)), config.max_blanks)
    candidates = [cell for cell in members if cell not in blanks]
    rng.shuffle(candidates)
    # Cells of equations with no blank yet go first, so every equation ends up with one.
    candidates.sort(key=lambda cell: all(
        not any(p in blanks for p in equations[i].cells) for i in members[cell]), reverse=True)
    for cell in candidates:
        if len(blanks) >= cap:
            break
        trial = blanks | {cell}
        if _depth(grid, trial) == target_depth:
            blanks = trial
    if len(blanks) < config.min_blanks:
        return None
    if any(not any(p in blanks for p in eq.cells) for eq in equations):
        return None
    return blanks


def _chain_blanks(rng: random.Random, equations, members: dict[Position, list[int]],
                  depth: int) -> set[Position] | None:
    """Blanks along a path of ``depth`` equations, so solving needs one wave per equation."""
    neighbours: dict[int, list[tuple[int, Position]]] = {i: [] for i in range(len(equations))}
    for cell, owners in members.items():
        if len(owners) == 2:
            i, j = owners
            neighbours[i].append((j, cell))
            neighbours[j].append((i, cell))
    start = rng.randrange(len(equations))
    path, shared = [start], []
    while len(path) < depth:
        options = [(j, cell) for j, cell in neighbours[path[-1]] if j not in path]
        if not options:
            return None
        j, cell = rng.choice(options)
        path.append(j)
        shared.append(cell)
    last = equations[path[-1]]
    ends = [cell for cell in last.cells if cell not in shared and len(members[cell]) == 1]
    if not ends:
        return None
    return set(shared) | {rng.choice(ends)}


def _depth(grid: Grid, blanks: set[Position]) -> int | None:
    """Propagation depth with these cells blank, or None if propagation cannot finish."""
    values = {p: v for p, v in grid.known_values().items() if p not in blanks}
    state = propagate(grid, values)
    if state.unsolved or state.contradiction is not None:
        return None
    return state.depth


def generate_puzzles(n: int, difficulty: str, seed: int, *, config: GeneratorConfig | None = None,
                     exclude_ids: frozenset[str] = frozenset(), start: int = 0) -> list[Puzzle]:
    """``n`` distinct puzzles; ``difficulty`` is one level or ``mixed`` (levels in turn).

    Puzzle ``i`` depends only on (seed, difficulty, i), so a set can be made in pieces. Grids
    already in the set or in ``exclude_ids`` (e.g. an evaluation set) are skipped. ``config``
    supplies everything but the level, which ``difficulty`` sets.
    """
    levels = DIFFICULTIES if difficulty == "mixed" else (difficulty,)
    configs = {
        level: GeneratorConfig(**{**_config_fields(config), "difficulty": level}) for level in levels
    }
    seen = set(exclude_ids)
    puzzles: list[Puzzle] = []
    index = start
    while len(puzzles) < n:
        level = levels[index % len(levels)]
        puzzle = generate_puzzle(configs[level], puzzle_seed(seed, level, index))
        index += 1
        if puzzle.puzzle_id in seen:
            continue
        seen.add(puzzle.puzzle_id)
        puzzles.append(replace(puzzle, name=f"puzzle_{seed}_{index - 1:05d}"))
    return puzzles


def _config_fields(config: GeneratorConfig | None) -> dict:
    if config is None:
        return {}
    return {name: getattr(config, name) for name in GeneratorConfig.__dataclass_fields__}
