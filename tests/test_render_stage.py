"""The Ray Data render stage: PNG bytes per image row, null for text rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from crossmath.drawing import load_style, render_puzzle_png
from crossmath.pipeline.render_stage import RenderImages
from crossmath.puzzle.grid import GridFormatError, parse_markdown_grid
from crossmath.puzzle.records import read_official_jsonl


@pytest.fixture(scope="module")
def rows(official_jsonl) -> list[dict]:
    """Text, image and hybrid rows over two styles, and one row with the release's own image."""
    records = read_official_jsonl(official_jsonl)[:3]
    rows = []
    for i, record in enumerate(records):
        for style, modality in (("markdown", "text"), ("original", "image"),
                                ("altstyle", "hybrid")):
            rows.append({"id": f"{i}-{style}", "grid": record.fields["markdown_table"],
                         "style": style, "modality": modality, "image_path": ""})
    rows.append({"id": "release", "grid": records[0].fields["markdown_table"], "style": "original",
                 "modality": "image", "image_path": str(records[0].image_blank_path)})
    return rows


def expected_image(row: dict) -> bytes | None:
    if row["modality"] == "text":
        return None
    if row["image_path"]:
        with open(row["image_path"], "rb") as handle:
            return handle.read()
    return render_puzzle_png(parse_markdown_grid(row["grid"]), load_style(row["style"]))


def test_render_stage_on_ray_data(ray_local, rows):
    import ray

    dataset = ray.data.from_items(rows).map_batches(
        RenderImages, batch_size=4, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1,
    )
    out = {row["id"]: row for row in dataset.take_all()}  # Ray Data keeps no order: join on id
    assert sorted(out) == sorted(row["id"] for row in rows)
    for row in rows:
        assert out[row["id"]]["image"] == expected_image(row), row["id"]


def test_render_stage_numpy_batches_and_bad_input(rows):
    stage = RenderImages()
    batch = {name: np.array([row[name] for row in rows], dtype=object) for name in rows[0]}
    result = stage(batch)
    assert [image for image in result["image"]] == [expected_image(row) for row in rows]
    assert list(result["id"]) == [row["id"] for row in rows]  # other columns pass through

    table = pa.Table.from_pylist(rows).drop_columns(["image_path"])  # the path column is optional
    images = stage(table).column("image")
    assert images.type == pa.binary()
    assert images.null_count == 3

    with pytest.raises(ValueError, match="lacks column.*modality"):
        stage(pa.Table.from_pylist(rows).drop_columns(["modality"]))
    broken = pa.Table.from_pylist([{**rows[1], "grid": "| 7 | + | what |"}])
    with pytest.raises(GridFormatError, match="field 'grid'.*'what'"):
        stage(broken)
