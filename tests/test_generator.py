from collections import Counter

import pytest

from crossmath.puzzle.grid import evaluate
from crossmath.puzzle.solver import propagate, search_solutions
from crossmath.puzzle.synthesis import (
    GeneratorConfig,
    generate_puzzle,
    generate_puzzles,
    puzzle_seed,
)

DEPTH_BOUNDS = {"easy": (1, 1), "medium": (2, 5), "hard": (3, 99)}


@pytest.fixture(scope="module")
def generated():
    return {level: generate_puzzles(30, level, seed=11) for level in DEPTH_BOUNDS}


@pytest.mark.parametrize("level", sorted(DEPTH_BOUNDS))
def test_generated_puzzles_meet_their_difficulty(generated, level):
    low, high = DEPTH_BOUNDS[level]
    for puzzle in generated[level]:
        assert low <= puzzle.depth <= high
        assert puzzle.difficulty == level
        assert 5 <= puzzle.problems <= 15
        assert 3 <= len(puzzle.answer) <= 15
        assert max(puzzle.grid.n_rows, puzzle.grid.n_cols) <= 21


@pytest.mark.parametrize("level", sorted(DEPTH_BOUNDS))
def test_generated_puzzles_are_unique_and_consistent(generated, level):
    for puzzle in generated[level]:
        search = search_solutions(puzzle.grid, limit=2)
        assert search.status == "unique"
        assert search.solutions[0] == puzzle.solution
        values = puzzle.all_values()
        for eq in puzzle.grid.equations:
            a, b, c = (values[p] for p in eq.cells)
            assert evaluate(a, eq.operator, b) == c
            assert any(p in puzzle.solution for p in eq.cells), "every equation has a blank"
        low, high = puzzle.value_range
        assert all(low <= v <= high for v in values.values())
        assert propagate(puzzle.grid).steps == puzzle.steps


def test_same_seed_same_puzzles_and_sets_split_cleanly():
    first = generate_puzzles(6, "mixed", seed=3)
    again = generate_puzzles(6, "mixed", seed=3)
    assert [p.markdown_table for p in first] == [p.markdown_table for p in again]
    assert [p.name for p in first] == [p.name for p in again]
    assert Counter(p.difficulty for p in first) == {"easy": 2, "medium": 2, "hard": 2}
    other = generate_puzzles(6, "mixed", seed=4)
    assert {p.puzzle_id for p in first}.isdisjoint(p.puzzle_id for p in other)
    # Puzzle i of a set is a function of (seed, level, i) alone.
    alone = generate_puzzle(GeneratorConfig(difficulty="hard"), puzzle_seed(3, "hard", 2))
    assert first[2].difficulty == "hard"
    assert (alone.markdown_table, alone.seed) == (first[2].markdown_table, first[2].seed)


def test_excluded_grids_are_skipped():
    base = generate_puzzles(3, "easy", seed=5)
    again = generate_puzzles(3, "easy", seed=5, exclude_ids=frozenset({base[1].puzzle_id}))
    assert base[1].puzzle_id not in {p.puzzle_id for p in again}
    assert again[0] == base[0] and again[1] == base[2]


def test_operator_set_is_respected():
    config = GeneratorConfig(difficulty="medium", operators="+-")
    for i in range(10):
        puzzle = generate_puzzle(config, puzzle_seed(0, "medium", i))
        assert {eq.operator for eq in puzzle.grid.equations} <= {"+", "-"}


@pytest.mark.parametrize("bad", [dict(difficulty="extreme"), dict(operators="+^"), dict(max_value=5)])
def test_bad_generator_config_is_rejected(bad):
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)
