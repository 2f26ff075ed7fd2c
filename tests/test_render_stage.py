"""The Ray Data render stage: each unit of a call gets its PNG; text units and units that hold
the release's image are left as they are."""

from __future__ import annotations

import pyarrow as pa
import pytest

from crossmath.drawing import load_style, render_puzzle_png
from crossmath.pipeline.calls import CallCapacity, call_table, plan_calls
from crossmath.pipeline.render_stage import RenderImages
from crossmath.puzzle.grid import GridFormatError, parse_markdown_grid
from crossmath.settings.checks import resolved_styles
from crossmath.tasks.crossmath.requests import RequestPlan
from crossmath.tasks.crossmath.sources import official_puzzles

STYLES = resolved_styles(["original", "altstyle"])  # as the run's door resolves them

@pytest.fixture(scope="module")
def calls(official_sample) -> list[dict]:
    """Text, image and hybrid requests of 3 official puzzles over two styles, in calls of 4
    sequences; the original style's units hold the release's image (as the driver gives it)."""
    puzzle_set = official_puzzles(str(official_sample), STYLES, limit=3)
    plan = RequestPlan(["text", "image", "hybrid"], STYLES, 1, None, "m")
    units = plan.units(puzzle_set.puzzles, {key: path for key, path in
                                            puzzle_set.official_images.items()
                                            if key[1] == "original"})
    planned = plan_calls(units, CallCapacity(4), STYLES)
    for call in planned:
        for unit in call["units"]:
            if unit["image_path"]:
                unit["images"] = [b"the release's png"]
    return planned


def expected_images(unit: dict) -> list[bytes] | None:
    if unit["modality"] == "text":
        return None
    if unit["image_path"]:
        return [b"the release's png"]
    return [render_puzzle_png(parse_markdown_grid(unit["grid"]), load_style(unit["style"]))]


def units_by_key(rows: list[dict]) -> dict:
    return {(row["call"], unit["puzzle_id"], unit["style"]): unit
            for row in rows for unit in row["units"]}


@pytest.mark.slow
def test_render_stage_on_ray_data(ray_local, calls):
    import ray

    dataset = ray.data.from_blocks([call_table(call) for call in calls]).map_batches(
        RenderImages, fn_constructor_kwargs={"styles": STYLES}, batch_size=1, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1,
    )
    out = units_by_key(dataset.take_all())  # Ray Data keeps no order: join on ids
    planned = units_by_key(calls)
    assert sorted(out) == sorted(planned)
    for key, unit in planned.items():
        assert out[key]["images"] == expected_images(unit), key
        assert out[key]["requests"] == unit["requests"]
    kinds = {("text" if u["modality"] == "text" else "release" if u["image_path"] else "drawn")
             for u in planned.values()}
    assert kinds == {"text", "release", "drawn"}  # the test saw every case


def test_render_stage_keeps_the_schema_and_names_what_is_wrong(calls):
    stage = RenderImages(STYLES)
    table = pa.concat_tables([call_table(call) for call in calls])
    rendered = stage(table)
    assert rendered.schema == table.schema
    assert rendered.column("call").to_pylist() == table.column("call").to_pylist()

    with pytest.raises(ValueError, match="lacks column 'units'"):
        stage(table.drop_columns(["units"]))
    drawn = next(call for call in calls
                 if any(u["modality"] != "text" and not u["image_path"] for u in call["units"]))
    broken = {**drawn, "units": [{**unit, "grid": "| 7 | + | what |", "images": None}
                                 for unit in drawn["units"] if unit["modality"] != "text"]}
    with pytest.raises(GridFormatError, match=r"puzzle \S+.*field 'grid'.*'what'"):
        stage(call_table(broken))


def test_render_stage_draws_only_with_the_styles_it_was_given(calls):
    """A style the door did not resolve is an error naming it, never a file read on a worker."""
    drawn = next(call for call in calls
                 if any(u["modality"] != "text" and not u["image_path"] for u in call["units"]))
    with pytest.raises(ValueError, match="style 'altstyle' is not among the styles resolved"):
        RenderImages({"original": STYLES["original"]})(call_table(drawn))

