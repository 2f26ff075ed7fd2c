"""Training targets and the training set: rationale from the waves, disjointness, expansion."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from crossmath.drawing import load_style, render_puzzle_png
from crossmath.finetuning.dataset import (
    Exclusion,
    TrainingSetSpec,
    build_training_set,
    evaluation_puzzles,
    generate_training_puzzles,
    open_training_set,
    solved_fingerprint,
    split_validation,
)
from crossmath.finetuning.targets import deciding_equation, rationale_lines, target_text
from crossmath.metrics.answers import extract_answer
from crossmath.puzzle.grid import parse_markdown_grid
from crossmath.puzzle.synthesis import generate_puzzles

SPEC = TrainingSetSpec(n_puzzles=6, seed=7, styles=("original", "noborder"), shard_puzzles=4)


@pytest.fixture(scope="module")
def puzzles():
    return generate_puzzles(12, "mixed", seed=3)


def test_rationale_follows_the_waves_with_known_operands(puzzles) -> None:
    deep = [p for p in puzzles if p.depth >= 3]
    assert deep, "the sample should hold a puzzle of depth 3 or more"
    for puzzle in puzzles:
        lines = rationale_lines(puzzle)
        assert len(lines) == len(puzzle.answer)
        waves = [int(line.split(":")[0].removeprefix("Step ")) for line in lines]
        assert waves == sorted(waves) and set(waves) == set(puzzle.steps.values())
        for blank in puzzle.grid.blanks:
            equation = deciding_equation(puzzle, blank)
            others = [c for c in equation.cells if c != blank]
            assert all(puzzle.steps.get(c, 0) < puzzle.steps[blank] for c in others)
        # each line names its cell and value, and the equation's ? stands for that value
        for line, blank in zip(lines, sorted(puzzle.grid.blanks, key=lambda p: (puzzle.steps[p], p))):
            value = puzzle.solution[blank]
            assert line.endswith(f"gives {value} (row {blank[0] + 1}, column {blank[1] + 1}).")
            a, op, b, _, c = line.split(": ", 1)[1].split(" gives")[0].split(" ")
            a, b, c = (str(value) if t == "?" else t for t in (a, b, c))
            assert {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b),
                    "÷": int(a) // int(b)}[op] == int(c)


def test_targets_end_with_the_answer_the_evaluation_extracts(puzzles) -> None:
    for puzzle in puzzles:
        for kind in ("rationale", "answer"):
            assert extract_answer(target_text(puzzle, kind)) == puzzle.answer
    assert target_text(puzzles[0], "answer") == "<answer>" + " ".join(puzzles[0].answer) + "</answer>"
    with pytest.raises(ValueError, match="unknown target kind"):
        target_text(puzzles[0], "essay")


def test_step_labels_that_do_not_come_from_propagation_are_refused(puzzles) -> None:
    puzzle = next(p for p in puzzles if p.depth >= 2)
    flattened = replace(puzzle, steps={p: 1 for p in puzzle.steps})  # claims every blank is wave 1
    with pytest.raises(ValueError, match="no equation decides the blank at row"):
        rationale_lines(flattened)


def test_training_puzzles_avoid_excluded_ids_and_solved_grids() -> None:
    plain = generate_training_puzzles(SPEC, Exclusion())
    by_id = Exclusion(puzzle_ids=frozenset(p.puzzle_id for p in plain[:2]))
    # The same solved grids with another choice of blanks: ids differ, solutions do not.
    by_solution = Exclusion(solved_grids=frozenset(solved_fingerprint(p) for p in plain[2:4]))
    for exclusion, dropped in ((by_id, plain[:2]), (by_solution, plain[2:4])):
        kept = generate_training_puzzles(SPEC, exclusion)
        assert len(kept) == SPEC.n_puzzles
        assert not {p.puzzle_id for p in kept} & {p.puzzle_id for p in dropped}
        assert [p.puzzle_id for p in kept[:4]] == [p.puzzle_id for p in plain if p not in dropped][:4]


def test_evaluation_sets_are_the_main_jobs_puzzles() -> None:
    from crossmath.tasks.crossmath.sources import generated_puzzles

    made = evaluation_puzzles([{"n": 5, "difficulty": "mixed", "seed": 0}])
    assert [p.puzzle_id for p in made] == [p.puzzle_id for p in generated_puzzles(5, "mixed", 0).puzzles]
    with pytest.raises(ValueError, match=r"exclude_generated\[0\]: missing field\(s\) \['seed'\]"):
        evaluation_puzzles([{"n": 5, "difficulty": "mixed"}])


def test_official_test_set_is_excluded_by_id_and_solution(official_jsonl: Path) -> None:
    official = evaluation_puzzles(official=str(official_jsonl))
    assert len(official) == 12
    exclusion = Exclusion.of(official)
    assert all(exclusion.excludes(p) for p in official)


def test_built_set_expands_modalities_and_styles(tmp_path: Path) -> None:
    exclusion = Exclusion.of(generate_puzzles(3, "mixed", seed=0))
    built = build_training_set(SPEC, tmp_path / "set", exclusion)
    table = built.read()
    assert built.n_examples == table.num_rows == SPEC.n_puzzles * 5  # 2 styles x (image, hybrid) + text
    assert [p.name for p in built.shards] == ["examples-00000.parquet", "examples-00001.parquet"]
    rows = table.to_pylist()
    assert len({r["example_id"] for r in rows}) == len(rows)
    by_puzzle: dict[str, list[dict]] = {}
    for row in rows:
        by_puzzle.setdefault(row["puzzle_id"], []).append(row)
    assert len(by_puzzle) == SPEC.n_puzzles
    assert not set(by_puzzle) & exclusion.puzzle_ids
    for examples in by_puzzle.values():
        combos = sorted((r["modality"], r["style"]) for r in examples)
        assert combos == [("hybrid", "noborder"), ("hybrid", "original"), ("image", "noborder"),
                          ("image", "original"), ("text", "markdown")]
        grid = parse_markdown_grid(examples[0]["grid"])
        assert examples[0]["n_blanks"] == len(grid.blanks) == len(examples[0]["answer"])
        for row in examples:
            assert extract_answer(row["target"]) == row["answer"]
            if row["modality"] == "text":
                assert row["image"] is None
            else:
                assert row["image"] == render_puzzle_png(grid, load_style(row["style"]))
                assert Image.open(io.BytesIO(row["image"])).size == (55 * grid.n_cols, 55 * grid.n_rows)
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["excluded_puzzle_ids"] == 3 and manifest["n_examples"] == len(rows)


def test_built_set_is_reused_and_a_different_spec_is_refused(tmp_path: Path) -> None:
    spec = TrainingSetSpec(n_puzzles=2, modalities=("text",), styles=())
    first = build_training_set(spec, tmp_path / "set")
    stamp = first.shards[0].stat().st_mtime_ns
    again = build_training_set(spec, tmp_path / "set")
    assert again.manifest == first.manifest and again.shards[0].stat().st_mtime_ns == stamp
    assert open_training_set(tmp_path / "set").n_examples == 2
    with pytest.raises(FileExistsError, match="built from another spec"):
        build_training_set(replace(spec, target="answer"), tmp_path / "set")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a training set"):
        build_training_set(spec, tmp_path / "junk")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk", "set"]  # no staging left behind


def test_spec_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['n'\]"):
        TrainingSetSpec.from_mapping({"n": 3})
    with pytest.raises(ValueError, match="modalities"):
        TrainingSetSpec(modalities=("audio",))
    with pytest.raises(ValueError, match="need a style"):
        TrainingSetSpec(styles=(), modalities=("image",))
    with pytest.raises(ValueError, match="target"):
        TrainingSetSpec(target="essay")


def test_validation_split_keeps_each_puzzle_on_one_side(tmp_path: Path) -> None:
    built = build_training_set(TrainingSetSpec(n_puzzles=30, modalities=("text", "image"),
                                               styles=("original",)), tmp_path / "set")
    table = built.read()
    train, held = split_validation(table, 0.3, seed=1)
    assert train.num_rows + held.num_rows == table.num_rows and held.num_rows > 0
    assert not set(train.column("puzzle_id").to_pylist()) & set(held.column("puzzle_id").to_pylist())
    reversed_table = table.take(list(range(table.num_rows))[::-1])
    again, _ = split_validation(reversed_table, 0.3, seed=1)
    assert again.column("example_id").to_pylist() == train.column("example_id").to_pylist()
    assert split_validation(table, 0.0)[1].num_rows == 0
    with pytest.raises(ValueError, match="validation fraction"):
        split_validation(table, 1.0)
    assert pq.read_metadata(built.shards[0]).num_rows == table.num_rows
