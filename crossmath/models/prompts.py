"""Prompt sets: how a puzzle shown in one modality becomes the words and image a model sees.

A prompt set is a small YAML file with an ``id`` and one template per modality (``text``,
``image``, ``hybrid``) plus a shared ``rules`` block, and optionally ``transcribe``: the
perception probe's request, which shows the image alone and asks for the grid back as a table
(see docs/probe.md). Keeping the task rules in one block that
every modality includes means the three prompts differ only in how the grid is shown, which is
what the modality gap is supposed to measure. The id is recorded with every prediction, so a
changed wording must come with a new id (the golden prompt tests in ``tests/golden/`` catch a
silent change).

The shipped sets live in ``prompt_templates/`` beside this module and are named by file stem
(``crossmath-v1``); a user's own set is named by its path. ``release`` (or the path of an
``instruction_template.py``) names the CrossMath release's own instructions instead, which
come with their own layout (see ``release_prompt``).

The pipeline builds each request's prompt from its set at planning time (``PromptLayout``: the
text parts and where the image goes), before any image exists; the image is attached once it
is rendered. Backends receive the finished ``Prompt`` and never see the set.

Nothing here imports torch.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import yaml

from crossmath.models.base import MODALITIES, ModelRequest, Prompt
from crossmath.models.prompt_parts import PromptLayout, PromptTemplateError, check_modality
from crossmath.models.release_prompt import is_release_instructions, load_release_instructions

DEFAULT_PROMPT = "crossmath-v1"
# Recorded as the prompt set of models that are shown no prompt (rule-based baselines).
NO_PROMPT_ID = "none"
TEMPLATE_DIR = Path(__file__).with_name("prompt_templates")

PLACEHOLDERS = frozenset({"grid", "rules", "n_blanks", "value_min", "value_max"})
TRANSCRIBE = "transcribe"  # the optional field of the probe's transcription prompt


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt set: an id and a format string per modality (``str.format`` placeholders)."""

    id: str
    text: str
    image: str
    hybrid: str
    rules: str = ""
    source: str = "<inline>"
    transcribe: str = ""

    def __post_init__(self) -> None:
        if not self.id or not self.id.strip():
            raise PromptTemplateError(f"{self.source}: field 'id' is empty")
        for modality in MODALITIES:
            _check_placeholders(getattr(self, modality), modality, self.source)
        _check_placeholders(self.rules, "rules", self.source)
        _check_placeholders(self.transcribe, TRANSCRIBE, self.source)
        if "{rules}" in self.rules:
            raise PromptTemplateError(f"{self.source}: field 'rules' must not include {{rules}}")

    def for_modality(self, modality: str) -> str:
        check_modality(modality)
        return getattr(self, modality)

    def layout(self, modality: str, grid: str, n_blanks: int,
               value_range: tuple[int, int]) -> PromptLayout:
        """The prompt for one puzzle in one modality: one text part, the image (if any) first."""
        check_modality(modality)
        values = {
            "grid": grid.strip(),
            "n_blanks": n_blanks,
            "value_min": value_range[0],
            "value_max": value_range[1],
        }
        values["rules"] = self.rules.format(**values)
        text = self.for_modality(modality).format(**values)
        return PromptLayout((text,), None if modality == "text" else 0)

    def transcription_layout(self) -> PromptLayout | None:
        """The probe's transcription prompt, the image first; None if the set has none."""
        return PromptLayout((self.transcribe,), 0) if self.transcribe else None


class PromptSet(Protocol):
    """What the pipeline needs of a prompt set: an id to record and a layout per puzzle."""

    id: str

    def layout(self, modality: str, grid: str, n_blanks: int,
               value_range: tuple[int, int]) -> PromptLayout: ...


def _check_placeholders(template: str, field: str, source: str) -> None:
    """Reject unknown placeholders now, and a text grid in the image prompt (it would leak)."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:  # unbalanced braces
        raise PromptTemplateError(f"{source}: field {field!r}: {error}") from None
    unknown = names - PLACEHOLDERS
    if unknown:
        raise PromptTemplateError(
            f"{source}: field {field!r} uses unknown placeholder(s) {sorted(unknown)}; "
            f"allowed: {sorted(PLACEHOLDERS)}"
        )
    if field == TRANSCRIBE and names:
        raise PromptTemplateError(
            f"{source}: field {TRANSCRIBE!r} takes no placeholder, got {sorted(names)}: the "
            "transcription prompt shows the image alone"
        )
    if field == "image" and "grid" in names:
        raise PromptTemplateError(
            f"{source}: field 'image' must not show the text grid ({{grid}}): "
            "the image modality sees the picture only"
        )
    if field in ("text", "hybrid") and "grid" not in names:
        raise PromptTemplateError(f"{source}: field {field!r} must include the grid ({{grid}})")


def load_prompt_template(name_or_path: str | Path) -> PromptSet:
    """A shipped prompt set by name (``"crossmath-v1"``), a user's YAML file by path, or the
    release's instructions (``"release"`` or the path of an ``instruction_template.py``)."""
    if is_release_instructions(name_or_path):
        return load_release_instructions(name_or_path)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        shipped = TEMPLATE_DIR / f"{name_or_path}.yaml"
        if not shipped.is_file():
            known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.yaml"))
            raise PromptTemplateError(
                f"prompt set {str(name_or_path)!r} is neither a file nor a shipped set {known}"
            )
        path = shipped
    try:
        fields: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PromptTemplateError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(fields, dict):
        raise PromptTemplateError(f"{path}: expected a mapping with id, text, image, hybrid")
    missing = [key for key in ("id", *MODALITIES) if key not in fields]
    if missing:
        raise PromptTemplateError(f"{path}: missing field(s) {missing}")
    extra = sorted(set(fields) - {"id", "rules", TRANSCRIBE, *MODALITIES})
    if extra:
        raise PromptTemplateError(f"{path}: unknown field(s) {extra}")
    for key, value in fields.items():
        if not isinstance(value, str):
            raise PromptTemplateError(f"{path}: field {key!r} must be a string")
    return PromptTemplate(
        id=fields["id"].strip(),
        text=fields["text"],
        image=fields["image"],
        hybrid=fields["hybrid"],
        rules=fields.get("rules", ""),
        source=str(path),
        transcribe=fields.get(TRANSCRIBE, ""),
    )


def transcription_layout(prompt_set: PromptSet | None) -> PromptLayout:
    """The perception probe's transcription prompt for a model shown ``prompt_set``: the set's
    own ``transcribe`` template, or, for a set without one (the release's instructions have
    none), the default set's, which is ours. Rule-based models (no set) are shown no text."""
    if prompt_set is None:
        return PromptLayout((), 0)
    own = getattr(prompt_set, "transcription_layout", None)
    layout = own() if own is not None else None
    if layout is None:
        layout = load_prompt_template(DEFAULT_PROMPT).transcription_layout()
    if layout is None:
        raise PromptTemplateError(f"the default prompt set {DEFAULT_PROMPT} has no "
                                  f"{TRANSCRIBE!r} prompt")
    return layout


def puzzle_layout(prompt_set: PromptSet, modality: str, grid: str, n_blanks: int,
                  value_range: tuple[int, int]) -> PromptLayout:
    """The prompt for one puzzle in one modality, as ``prompt_set`` lays it out."""
    return prompt_set.layout(modality, grid, n_blanks, value_range)


def puzzle_request(request_id: str, modality: str, grid: str, *, image: bytes | None = None,
                   template: PromptSet | None = None, sample: int = 0, n_blanks: int = 0,
                   value_range: tuple[int, int] = (0, 0)) -> ModelRequest:
    """A request for one puzzle in one modality, its prompt built from ``template`` (the
    default set when None), for callers outside the pipeline: benchmarks, rollouts, tests.

    Raises ``ValueError`` when the image is missing for image or hybrid (or given for text).
    """
    template = template or load_prompt_template(DEFAULT_PROMPT)
    prompt = puzzle_layout(template, modality, grid, n_blanks, value_range).with_image(image)
    return ModelRequest(request_id, prompt, sample=sample, modality=modality, grid_markdown=grid,
                        n_blanks=n_blanks, value_range=value_range)


def image_placeholder(png: bytes) -> dict[str, Any]:
    """The Hugging Face chat part of an image: a placeholder (the processor gets the image)."""
    return {"type": "image"}


def chat_messages(prompt: Prompt,
                  image_part: Callable[[bytes], dict[str, Any]] = image_placeholder
                  ) -> list[dict[str, Any]]:
    """One user turn in the Hugging Face chat format, parts in the prompt's order; each image
    becomes ``image_part`` of its bytes (an OpenAI client makes an ``image_url`` of it)."""
    content = [{"type": "text", "text": part} if isinstance(part, str) else image_part(part)
               for part in prompt.parts()]
    return [{"role": "user", "content": content}]
