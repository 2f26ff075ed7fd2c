import codecs
import json

import pytest
from conftest import OFFICIAL_STYLES

from crossmath.puzzle.grid import GridFormatError
from crossmath.puzzle.records import (
    ReleaseLayout,
    read_official_jsonl,
    record_fields,
    write_official_jsonl,
)
from crossmath.puzzle.table import read_puzzle_table, write_puzzle_table

TAGS = {"original": "hr", "noborder": "noborder", "beige": "hr_beige", "altstyle": "altstyle"}


@pytest.mark.parametrize("style", sorted(OFFICIAL_STYLES))
def test_reading_then_writing_reproduces_the_sample(official_sample, tmp_path, style):
    folder, name = OFFICIAL_STYLES[style]
    source = official_sample / folder / name
    records = read_official_jsonl(source)
    assert [r.number for r in records] == list(range(1, 13))
    out = tmp_path / name
    write_official_jsonl((r.fields for r in records), out)
    original_lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert out.read_text(encoding="utf-8").splitlines() == original_lines


@pytest.mark.parametrize("style", sorted(OFFICIAL_STYLES))
def test_fields_derived_from_the_puzzle_equal_the_release(official_sample, style):
    folder, name = OFFICIAL_STYLES[style]
    layout = ReleaseLayout(folder, TAGS[style])
    assert layout.jsonl_name == name
    for record in read_official_jsonl(official_sample / folder / name):
        derived = record_fields(record.to_puzzle(), layout, record.name)
        for key, value in derived.items():
            assert record.fields[key] == value, (record.name, key)
        assert (official_sample / folder / derived["img_blank"]).is_file()


def test_image_path_resolves_against_the_jsonl_folder(official_jsonl):
    record = read_official_jsonl(official_jsonl)[0]
    assert record.image_blank_path == official_jsonl.parent / record.fields["img_blank"]
    assert record.image_blank_path.is_file()
    assert record.name == "math_puzzle_0003"


def test_malformed_line_error_names_file_and_line(tmp_path, official_jsonl):
    good = official_jsonl.read_text(encoding="utf-8").splitlines()[0]
    path = tmp_path / "broken.jsonl"
    path.write_text("\n" + good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(GridFormatError, match=r"broken.jsonl:3: not valid JSON"):
        read_official_jsonl(path)


def test_a_byte_order_mark_is_read_past_and_line_numbers_stay_right(tmp_path, official_jsonl):
    lines = official_jsonl.read_bytes().splitlines(keepends=True)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + lines[0] + b"\n" + lines[1])
    records = read_official_jsonl(path)
    assert [r.fields for r in records] == [r.fields for r in read_official_jsonl(official_jsonl)[:2]]
    assert [(r.line, r.number) for r in records] == [(1, 1), (3, 2)]
    path.write_bytes(codecs.BOM_UTF8 + lines[0] + b"{not json\n")
    with pytest.raises(GridFormatError, match=r"bom.jsonl:2: not valid JSON"):
        read_official_jsonl(path)


def test_the_main_job_reads_a_release_file_with_a_byte_order_mark(tmp_path, official_jsonl):
    from crossmath.tasks.crossmath.sources import official_puzzles

    path = tmp_path / "testset_hr.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + official_jsonl.read_bytes())
    assert official_puzzles(str(path), {}).puzzles == official_puzzles(str(official_jsonl), {}).puzzles


def test_a_line_that_is_not_utf8_is_named(tmp_path, official_jsonl):
    first = official_jsonl.read_bytes().splitlines(keepends=True)[0]
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(first + '{"difficulty": "d\u00e9j\u00e0"}\n'.encode("latin-1"))
    with pytest.raises(GridFormatError, match=r"latin1.jsonl:2: not UTF-8 text"):
        read_official_jsonl(path)


def test_bad_cell_error_names_file_line_field_row_and_column(tmp_path, official_jsonl):
    fields = json.loads(official_jsonl.read_text(encoding="utf-8").splitlines()[0])
    fields["markdown_table"] = fields["markdown_table"].replace("| 28 |", "| 2B |")
    path = tmp_path / "cell.jsonl"
    path.write_text("\n\n" + json.dumps(fields, ensure_ascii=False) + "\n", encoding="utf-8")
    record = read_official_jsonl(path)[0]
    assert record.number == 1 and record.line == 3
    with pytest.raises(GridFormatError) as error:
        record.to_puzzle()
    message = str(error.value)
    assert "cell.jsonl:3" in message and "'markdown_table'" in message
    assert "row 3, column 1" in message and "'2B'" in message


def test_missing_field_is_named(tmp_path):
    path = tmp_path / "missing.jsonl"
    path.write_text('{"img_blank": "a.png", "difficulty": "easy"}\n', encoding="utf-8")
    with pytest.raises(GridFormatError, match="missing.jsonl:1: missing field.*markdown_table"):
        read_official_jsonl(path)


def test_puzzle_table_round_trips_with_stable_ids(official_jsonl, tmp_path):
    puzzles = [r.to_puzzle() for r in read_official_jsonl(official_jsonl)]
    write_puzzle_table(puzzles, tmp_path / "p.parquet")
    back = read_puzzle_table(tmp_path / "p.parquet")
    assert back == puzzles
    assert len({p.puzzle_id for p in back}) == 12
    assert all(len(p.puzzle_id) == 16 for p in back)
