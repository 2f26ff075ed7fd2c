"""Generation speed per core, and the generated set's statistics beside the release's.

    python bench/generate.py [--n 300] [--seed 0]

One process = one core. Speed includes the uniqueness proof (the complete search) of every
puzzle. The baseline is rejection sampling on the same layouts and values: random blank sets
kept only when propagation reaches the drawn depth, which is what a generator without the
chain construction has to do.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from crossmath.puzzle import synthesis as gen
from crossmath.puzzle.grid import BLANK, Grid
from crossmath.puzzle.layout import random_layout
from crossmath.puzzle.model import DIFFICULTIES, Puzzle
from crossmath.puzzle.records import read_official_jsonl
from crossmath.puzzle.solver import propagate, search_solutions


def rejection_sampled_puzzle(config: gen.GeneratorConfig, seed: int) -> Puzzle:
    """Baseline: draw random blank sets until one has the target depth and a unique solution."""
    rng = random.Random(seed)
    depths, weights = zip(*config.depths.items())
    target = rng.choices(depths, weights)[0]
    n_equations = rng.randint(max(config.min_equations, target + 1), config.max_equations)
    while True:
        layout = random_layout(rng, n_equations, max_side=config.max_side)
        if layout is None:
            continue
        values = gen._assign_values(rng, layout, ["+", "-", "×", "÷"], 1, config.max_value)
        if values is None:
            continue
        full = gen._full_grid(layout, values)
        cells = sorted({p for eq in full.equations for p in eq.cells})
        for _ in range(50):
            blanks = set(rng.sample(cells, rng.randint(config.min_blanks, min(config.max_blanks, len(cells)))))
            if gen._depth(full, blanks) != target:
                continue
            grid = Grid.from_rows([BLANK if (r, c) in blanks else t for c, t in enumerate(row)]
                                  for r, row in enumerate(full.cells))
            if search_solutions(grid).status == "unique":
                return Puzzle.from_propagation(grid, propagate(grid), difficulty=config.difficulty,
                                               value_range=(1, config.max_value))


def rate(make, n: int) -> tuple[float, list[Puzzle]]:
    started = time.perf_counter()
    puzzles = [make(i) for i in range(n)]
    return n / (time.perf_counter() - started), puzzles


def stats(puzzles: list[Puzzle]) -> dict:
    ops = Counter(eq.operator for p in puzzles for eq in p.grid.equations)
    total_ops = sum(ops.values())
    values = [v for p in puzzles for v in p.all_values().values()]
    return {
        "puzzles": len(puzzles),
        "equations": f"{statistics.mean(p.problems for p in puzzles):.1f} "
                     f"({min(p.problems for p in puzzles)}-{max(p.problems for p in puzzles)})",
        "blanks": f"{statistics.mean(len(p.answer) for p in puzzles):.1f} "
                  f"({min(len(p.answer) for p in puzzles)}-{max(len(p.answer) for p in puzzles)})",
        "depth": " ".join(f"{d}:{c}" for d, c in sorted(Counter(p.depth for p in puzzles).items())),
        "operators + - × ÷ (%)": " / ".join(f"{100 * ops[o] / total_ops:.0f}" for o in "+-×÷"),
        "max value": f"{statistics.mean(max(p.all_values().values()) for p in puzzles):.0f} "
                     f"(≤{max(values)})",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-n", type=int, default=40)
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, one process (one core), n={args.n}")
    rows = {}
    for level in DIFFICULTIES:
        config = gen.GeneratorConfig(difficulty=level)
        per_s, puzzles = rate(lambda i: gen.generate_puzzle(config, gen.puzzle_seed(args.seed, level, i)),
                              args.n)
        rows[level] = stats(puzzles)
        line = f"{level:>6}: {per_s:7.1f} puzzles/s per core (uniqueness proved by search)"
        if level != "easy":
            base_s, _ = rate(lambda i: rejection_sampled_puzzle(config, gen.puzzle_seed(args.seed, level, i)),
                             args.baseline_n)
            line += f"; rejection-sampling baseline {base_s:6.1f}/s -> {per_s / base_s:4.1f}x"
        print(line)

    sample = Path(__file__).resolve().parents[2] / "shared/official-sample/Original/testset_hr.jsonl"
    if sample.is_file():
        official = [r.to_puzzle() for r in read_official_jsonl(sample)]
        for level in DIFFICULTIES:
            rows[f"sample {level}"] = stats([p for p in official if p.difficulty == level])
    keys = list(next(iter(rows.values())))
    print("\n| set | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
