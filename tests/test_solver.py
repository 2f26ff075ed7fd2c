import pytest

from crossmath.puzzle.grid import Equation, parse_markdown_grid
from crossmath.puzzle.records import read_official_jsonl
from crossmath.puzzle.solver import Contradiction, propagate, search_solutions, solve_one_unknown


def test_propagation_reproduces_official_answers_and_steps(official_jsonl):
    records = read_official_jsonl(official_jsonl)
    assert len(records) == 12
    for record in records:
        grid = record.grid()
        state = propagate(grid)
        assert state.solved, record.name
        assert [str(state.values[p]) for p in grid.blanks] == record.answer_tokens()
        assert [state.steps[p] for p in grid.blanks] == record.step_labels()


def test_search_proves_official_puzzles_unique(official_jsonl):
    for record in read_official_jsonl(official_jsonl):
        result = search_solutions(record.grid())
        assert result.status == "unique"
        assert [str(result.solutions[0][p]) for p in record.grid().blanks] == record.answer_tokens()


def test_search_finds_two_solutions_of_an_ambiguous_grid():
    grid = parse_markdown_grid("| ? | + | ? | = | 5 |")
    result = search_solutions(grid)
    assert result.status == "multiple"
    first, second = result.solutions
    assert first != second
    for solution in result.solutions:
        assert sum(solution.values()) == 5


def test_search_reports_no_solution_for_contradictory_grid():
    grid = parse_markdown_grid(
        "| 2 | + | ? | = | 5 |\n|   |   | × |   |   |\n|   |   | 4 |   |   |\n"
        "|   |   | = |   |   |\n|   |   | 13 |   |   |"
    )
    assert propagate(grid).contradiction is not None
    assert search_solutions(grid).status == "none"


def test_waves_follow_dependencies():
    grid = parse_markdown_grid(
        "| ? | × | ? | = | 6 |\n|   |   | + |   |   |\n|   |   | 1 |   |   |\n"
        "|   |   | = |   |   |\n|   |   | 4 |   |   |"
    )
    state = propagate(grid)
    # b = 4 - 1 in wave 1; only then is a the single unknown of a × 3 = 6.
    assert state.steps == {(0, 2): 1, (0, 0): 2}
    assert state.solved and state.values[(0, 0)] == 2


def test_search_branches_when_propagation_stalls():
    stalled = parse_markdown_grid("| ? | × | ? | = | 6 |")
    assert propagate(stalled).unsolved == ((0, 0), (0, 2))
    assert search_solutions(stalled).status == "multiple"


EQ = Equation("across", (0, 0), "×")


@pytest.mark.parametrize(
    "op, cells, expected",
    [("+", (None, 4, 9), 5), ("-", (None, 4, 9), 13), ("×", (None, 4, 12), 3), ("÷", (None, 4, 3), 12),
     ("+", (4, None, 9), 5), ("-", (9, None, 4), 5), ("×", (4, None, 12), 3), ("÷", (12, None, 3), 4),
     ("÷", (12, 4, None), 3), ("×", (0, None, 0), None), ("÷", (0, None, 0), None)],
)
def test_single_unknown_is_forced_or_left_open(op, cells, expected):
    assert solve_one_unknown(Equation("across", (0, 0), op), *cells) == expected


@pytest.mark.parametrize("op, cells", [("+", (None, 9, 4)), ("×", (None, 5, 12)), ("÷", (13, None, 3))])
def test_impossible_single_unknown_is_a_contradiction(op, cells):
    with pytest.raises(Contradiction):
        solve_one_unknown(Equation("across", (0, 0), op), *cells)
