import pytest
from conftest import OFFICIAL_STYLES

from crossmath.puzzle.grid import GridFormatError, evaluate, parse_markdown_grid
from crossmath.puzzle.records import read_official_jsonl

SMALL = "| 3 | x | ? | = | 12 |\n|   |   | / |   |   |\n|   |   | 2 |   |   |"


def test_every_official_table_round_trips_byte_for_byte(official_sample):
    for folder, name in OFFICIAL_STYLES.values():
        for record in read_official_jsonl(official_sample / folder / name):
            for field in ("markdown_table", "markdown_answer"):
                text = record.fields[field]
                assert parse_markdown_grid(text).to_markdown() == text


def test_release_quirks_are_read_as_canonical_operators():
    grid = parse_markdown_grid(SMALL.replace("| 3 | x |", "| 3 | * |"))
    assert grid[(0, 1)] == "×"
    assert parse_markdown_grid(SMALL)[(0, 1)] == "×"
    assert parse_markdown_grid(SMALL)[(1, 2)] == "÷"


def test_a_grid_remembers_how_its_file_spelled_a_cell():
    grid = parse_markdown_grid(SMALL.replace("| 12 |", "| 012 |"))
    assert grid.spellings == {(0, 1): "x", (1, 2): "/", (0, 4): "012"}
    assert (grid[(0, 4)], grid.written((0, 4)), grid.written((0, 0))) == ("12", "012", "3")
    assert grid == parse_markdown_grid(SMALL.replace("| x |", "| × |").replace("| / |", "| ÷ |"))
    assert "x" not in grid.to_markdown() and "÷" in grid.to_markdown()
    written = grid.to_markdown(as_written=True)
    assert written == SMALL.replace("| 12 |", "| 012 |")
    assert parse_markdown_grid(written).spellings == grid.spellings
    solved = grid.with_values({(0, 2): 4})
    assert solved.spellings == grid.spellings and solved[(0, 2)] == "4"


def test_equations_are_found_across_then_down():
    grid = parse_markdown_grid(
        "| 2 | + | ? | = | 5 |\n|   |   | × |   |   |\n|   |   | 4 |   |   |\n"
        "|   |   | = |   |   |\n|   |   | 12 |   |   |"
    )
    assert [(e.direction, e.start, e.operator) for e in grid.equations] == [
        ("across", (0, 0), "+"),
        ("down", (0, 2), "×"),
    ]
    assert grid.blanks == ((0, 2),)


def test_unknown_token_names_row_and_column():
    with pytest.raises(GridFormatError) as error:
        parse_markdown_grid("| 1 | + | 2 | = | 3 |\n|   | % |   |   |   |")
    assert (error.value.row, error.value.column) == (2, 2)
    assert "'%'" in str(error.value) and "row 2, column 2" in str(error.value)


def test_ragged_rows_and_non_table_lines_are_rejected():
    with pytest.raises(GridFormatError, match="row 2"):
        parse_markdown_grid("| 1 | + |\n| 2 |")
    with pytest.raises(GridFormatError, match="not a markdown table row"):
        parse_markdown_grid("| 1 | + |\n1 + 2")


@pytest.mark.parametrize(
    "a, op, b, expected",
    [(7, "+", 5, 12), (7, "-", 5, 2), (5, "-", 7, None), (6, "×", 7, 42), (42, "÷", 6, 7),
     (43, "÷", 6, None), (4, "÷", 0, None)],
)
def test_arithmetic_is_non_negative_and_exact(a, op, b, expected):
    assert evaluate(a, op, b) == expected
