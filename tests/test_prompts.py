"""Prompt sets: per-modality content, validation of user files, and golden snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmath.models.base import MODALITIES, Prompt
from crossmath.models.prompts import (
    DEFAULT_PROMPT,
    PromptTemplateError,
    chat_messages,
    load_prompt_template,
    puzzle_request,
    transcription_layout,
)
from crossmath.puzzle.records import read_official_jsonl

GOLDEN = Path(__file__).with_name("golden")
PNG = b"\x89PNG fake bytes"


@pytest.fixture(scope="module")
def official_grid(official_jsonl: Path) -> str:
    return read_official_jsonl(official_jsonl)[0].fields["markdown_table"]


def _prompt(modality: str, grid: str, template=None, image: bytes | None = PNG) -> Prompt:
    image = None if modality == "text" else image
    return puzzle_request(f"r-{modality}", modality, grid, image=image, template=template,
                          n_blanks=4, value_range=(3, 115)).prompt


@pytest.mark.parametrize("modality", MODALITIES)
def test_prompt_matches_golden_snapshot(modality: str, official_grid: str) -> None:
    """Any change of wording fails here: update the golden file only together with a new id."""
    template = load_prompt_template(DEFAULT_PROMPT)
    text = _prompt(modality, official_grid, template).text
    golden = GOLDEN / f"prompt_{template.id}_{modality}.txt"
    assert text == golden.read_text(encoding="utf-8"), (
        f"prompt drift for {modality}: if intended, give the prompt set a new id and rewrite {golden}"
    )


def test_transcription_prompt_matches_golden_snapshot() -> None:
    template = load_prompt_template(DEFAULT_PROMPT)
    layout = transcription_layout(template)
    golden = GOLDEN / f"prompt_{template.id}_transcribe.txt"
    assert layout.texts == (golden.read_text(encoding="utf-8"),) and layout.image_at == 0
    assert "|" in layout.texts[0] and "?" in layout.texts[0]  # asks for a table, blanks as ?


def test_a_set_without_a_transcription_prompt_borrows_ours_and_models_without_a_set_see_none(
        tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("id: plain\ntext: '{grid}'\nimage: 'i'\nhybrid: '{grid}'\n", encoding="utf-8")
    ours = transcription_layout(load_prompt_template(DEFAULT_PROMPT))
    assert transcription_layout(load_prompt_template(path)) == ours
    assert transcription_layout(None).texts == ()


def test_default_prompt_id_is_recorded() -> None:
    assert load_prompt_template(DEFAULT_PROMPT).id == "crossmath-v1.1"


def test_grid_and_image_reach_exactly_the_modalities_that_show_them(official_grid: str) -> None:
    template = load_prompt_template(DEFAULT_PROMPT)
    prompts = {m: _prompt(m, official_grid, template) for m in MODALITIES}
    first_row = official_grid.splitlines()[0]
    assert first_row in prompts["text"].text and first_row in prompts["hybrid"].text
    assert "|" not in prompts["image"].text
    assert prompts["text"].images == ()
    assert prompts["image"].images == (PNG,) and prompts["hybrid"].images == (PNG,)
    for prompt in prompts.values():  # the task, order and format reach every modality
        assert "row-major" in prompt.text and "<answer>" in prompt.text and "÷" in prompt.text


def test_image_modalities_without_an_image_are_refused(official_grid: str) -> None:
    with pytest.raises(ValueError, match="image is needed exactly"):
        puzzle_request("r", "image", official_grid)
    with pytest.raises(ValueError, match="image is needed exactly"):
        puzzle_request("r", "text", official_grid, image=PNG)


def test_chat_messages_keep_the_prompt_order_of_texts_and_images() -> None:
    assert chat_messages(Prompt(("hi",), (PNG,), (0,))) == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}
    ]
    assert chat_messages(Prompt(("a", "b"), (PNG, PNG), (1, 2))) == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"},
                                     {"type": "text", "text": "b"}, {"type": "image"}]}
    ]
    assert chat_messages(Prompt(("hi",))) == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]


@pytest.mark.parametrize("image_at", [(2,), (1, 0)])
def test_prompt_refuses_image_positions_outside_or_out_of_order(image_at) -> None:
    with pytest.raises(ValueError, match="image positions"):
        Prompt(("a",), (PNG,) * len(image_at), image_at)


def test_user_prompt_file_is_loaded_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "id: mine-1\n"
        "rules: 'Blanks: {n_blanks}, values {value_min}..{value_max}.'\n"
        "text: 'T {grid} {rules}'\nimage: 'I {rules}'\nhybrid: 'H {grid}'\n",
        encoding="utf-8",
    )
    template = load_prompt_template(str(path))
    assert template.id == "mine-1"
    assert _prompt("text", "| ? |", template).text == "T | ? | Blanks: 4, values 3..115."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("id: x\ntext: '{grid}'\nimage: 'see {grid}'\nhybrid: '{grid}'\n", "'image' must not show"),
        ("id: x\ntext: '{grid}'\nimage: 'i'\nhybrid: '{grid}'\ntranscribe: 'copy {grid}'\n",
         "'transcribe' takes no placeholder"),
        ("id: x\ntext: 'no grid'\nimage: 'i'\nhybrid: '{grid}'\n", "'text' must include the grid"),
        ("id: x\ntext: '{grid} {colour}'\nimage: 'i'\nhybrid: '{grid}'\n", "unknown placeholder"),
        ("id: x\ntext: '{grid}'\nimage: 'i'\n", "missing field"),
        ("id: x\ntext: '{grid}'\nimage: 'i'\nhybrid: '{grid}'\ntypo: 1\n", "unknown field"),
        ("id: x\ntext: '{grid'\nimage: 'i'\nhybrid: '{grid}'\n", "field 'text'"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_bad_prompt_files_name_file_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(PromptTemplateError, match=message) as error:
        load_prompt_template(path)
    assert str(path) in str(error.value)


def test_unknown_prompt_name_lists_the_shipped_sets() -> None:
    with pytest.raises(PromptTemplateError, match="crossmath-v1"):
        load_prompt_template("no-such-set")
