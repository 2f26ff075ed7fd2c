"""The release's instructions, read from a stand-in ``instruction_template.py`` of the same shape
(the release's own text is never copied into this project), and the release protocol preset."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from crossmath.models.base import ModelRequest
from crossmath.models.prompts import PromptTemplateError, chat_messages, load_prompt_template
from crossmath.models.release_prompt import (
    RELEASE_COMMIT,
    TEMPLATE_FILE,
    fetch_release_template,
    read_release_instructions,
)
from crossmath.pipeline.units import expand_unit
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.settings.checks import resolved_styles
from crossmath.tasks.crossmath.requests import RequestPlan

STAND_IN = '''\
import this_module_does_not_exist  # parsed, never run

GENERAL_TASK_DESCRIPTION = """
General: solve the grid.
"""
TEXT_ONLY_INPUT_DESCRIPTION = """
Input: a markdown table.
"""
API_TEXT_ONLY_INPUT_DESCRIPTION = "unused by the inference script"
IMAGE_ONLY_INPUT_DESCRIPTION = """
Input: an image.
"""
HYBRID_INPUT_DESCRIPTION = """
Input: an image and a table.
"""
OUTPUT_FORMAT_DESCRIPTION = """
Output: <answer>...</answer>
"""
TASK_DESCRIPTION = """
The puzzle:
"""
raise SystemExit("executed")
'''


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    path = tmp_path / TEMPLATE_FILE
    path.write_text(STAND_IN, encoding="utf-8")
    return path


def test_instruction_is_the_release_concatenation(stand_in):
    instructions = load_prompt_template(str(stand_in))
    assert instructions.instruction("hybrid") == (
        "\nGeneral: solve the grid.\n\nInput: an image and a table.\n"
        "\nOutput: <answer>...</answer>\n\nThe puzzle:\n")
    assert instructions.id.startswith("release-")
    same = stand_in.parent / "copy.py"
    same.write_text(STAND_IN.replace("parsed, never run", "a comment"), encoding="utf-8")
    assert read_release_instructions(same).id == instructions.id
    same.write_text(STAND_IN.replace("The puzzle:", "The puzzles:"), encoding="utf-8")
    assert read_release_instructions(same).id != instructions.id


def test_requests_carry_the_release_layout(stand_in):
    puzzle = generate_puzzles(1, "easy", seed=2)[0]
    plan = RequestPlan(["text", "image", "hybrid"], resolved_styles(["original"]), 1,
                       load_prompt_template(stand_in), "b")
    rows = {row["modality"]: row for unit in plan.units([puzzle])
            for row in expand_unit(unit, None if unit["style"] == "markdown" else [b"PNG"])}
    instruction = plan.prompt.instruction
    assert rows["text"]["prompt_texts"] == [instruction("text"), puzzle.markdown_table]
    assert rows["text"]["image_at"] == [] and rows["text"]["images"] == []
    assert rows["image"]["prompt_texts"] == [instruction("image")]
    assert rows["hybrid"]["prompt_texts"] == [instruction("hybrid"), puzzle.markdown_table]
    parts = [[p["type"] for p in chat_messages(ModelRequest.from_row(rows[m]).prompt)[0]["content"]]
             for m in ("text", "image", "hybrid")]
    assert parts == [["text", "text"], ["text", "image"], ["text", "text", "image"]]  # image last


def test_a_file_without_the_release_constants_is_refused(tmp_path):
    broken = tmp_path / "instruction_template.py"
    broken.write_text(STAND_IN.replace("TASK_DESCRIPTION = ", "TASK = "), encoding="utf-8")
    with pytest.raises(PromptTemplateError, match=f"{broken}.*TASK_DESCRIPTION"):
        load_prompt_template(broken)
    broken.write_text("GENERAL_TASK_DESCRIPTION = (", encoding="utf-8")
    with pytest.raises(PromptTemplateError, match="cannot read"):
        load_prompt_template(broken)


def test_the_release_file_is_fetched_once_at_the_pinned_commit(stand_in, tmp_path):
    cache = tmp_path / "cache"
    fetched = fetch_release_template(stand_in.as_uri(), cache)
    assert fetched == cache / RELEASE_COMMIT / TEMPLATE_FILE
    assert fetched.read_text(encoding="utf-8") == STAND_IN
    stand_in.unlink()  # offline from now on: the cached copy serves
    assert fetch_release_template(stand_in.as_uri(), cache) == fetched
    with pytest.raises(PromptTemplateError, match=f"model.prompt=/path/to/{TEMPLATE_FILE}"):
        fetch_release_template(stand_in.as_uri(), tmp_path / "empty-cache")


def _run_config(*overrides: str):
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        return compose("run", overrides=list(overrides))


def test_release_protocol_preset_and_the_qwen_defaults():
    cfg = _run_config("model=tiny-random", "+protocol=release")
    assert cfg.samples == 4 and cfg.model.prompt == "release"
    assert cfg.model.sampling == "checkpoint" and cfg.model.max_new_tokens == 16384
    assert cfg.model.enable_thinking is False
    for qwen in ("qwen-vl", "qwen2.5-vl-3b", "qwen3-vl-8b", "qwen3.5-9b"):
        assert _run_config(f"model={qwen}").model.prompt == "release", qwen
    ours = _run_config("model=qwen3.5-9b", "model.prompt=crossmath-v1")
    assert load_prompt_template(ours.model.prompt).id == "crossmath-v1.1"
    assert _run_config("model=tiny-random").model.prompt == "crossmath-v1"  # works offline
