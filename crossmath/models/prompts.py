"""Prompt sets: how a request (puzzle x modality) becomes the words and image a model sees.

A prompt set is a small YAML file with an ``id`` and one template per modality (``text``,
``image``, ``hybrid``) plus a shared ``rules`` block. Keeping the task rules in one block that
every modality includes means the three prompts differ only in how the grid is shown, which is
what the modality gap is supposed to measure. The id is recorded with every prediction, so a
changed wording must come with a new id (the golden prompt tests in ``tests/golden/`` catch a
silent change).

The shipped sets live in ``prompt_templates/`` beside this module and are named by file stem
(``crossmath-v1``); a user's own set is named by its path.

Nothing here imports torch: backends that talk HTTP use it too.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crossmath.models.base import MODALITIES, ModelRequest

DEFAULT_PROMPT = "crossmath-v1"
TEMPLATE_DIR = Path(__file__).with_name("prompt_templates")

PLACEHOLDERS = frozenset({"grid", "rules", "n_blanks", "value_min", "value_max"})


class PromptTemplateError(ValueError):
    """A prompt set file that cannot be used, naming the file and the field at fault."""


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt set: an id and a format string per modality (``str.format`` placeholders)."""

    id: str
    text: str
    image: str
    hybrid: str
    rules: str = ""
    source: str = "<inline>"

    def __post_init__(self) -> None:
        if not self.id or not self.id.strip():
            raise PromptTemplateError(f"{self.source}: field 'id' is empty")
        for modality in MODALITIES:
            _check_placeholders(getattr(self, modality), modality, self.source)
        _check_placeholders(self.rules, "rules", self.source)
        if "{rules}" in self.rules:
            raise PromptTemplateError(f"{self.source}: field 'rules' must not include {{rules}}")

    def for_modality(self, modality: str) -> str:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        return getattr(self, modality)


@dataclass(frozen=True)
class Prompt:
    """What one request shows the model: the user text, and the PNG for image and hybrid."""

    text: str
    image_png: bytes | None = None


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
    if field == "image" and "grid" in names:
        raise PromptTemplateError(
            f"{source}: field 'image' must not show the text grid ({{grid}}): "
            "the image modality sees the picture only"
        )
    if field in ("text", "hybrid") and "grid" not in names:
        raise PromptTemplateError(f"{source}: field {field!r} must include the grid ({{grid}})")


def load_prompt_template(name_or_path: str | Path) -> PromptTemplate:
    """A shipped prompt set by name (``"crossmath-v1"``) or a user's YAML file by path."""
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
    extra = sorted(set(fields) - {"id", "rules", *MODALITIES})
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
    )


def build_prompt(request: ModelRequest, template: PromptTemplate) -> Prompt:
    """The prompt for one request; raises ``ValueError`` naming the request if it is unusable.

    Text requests never carry the image, even if one was attached; image and hybrid requests
    must have one.
    """
    modality = request.modality
    if modality not in MODALITIES:
        raise ValueError(f"request {request.request_id}: unknown modality {modality!r}")
    if modality != "text" and not request.image_png:
        raise ValueError(f"request {request.request_id}: modality {modality!r} needs image_png")
    values = {
        "grid": request.grid_markdown.strip(),
        "n_blanks": request.n_blanks,
        "value_min": request.value_range[0],
        "value_max": request.value_range[1],
    }
    values["rules"] = template.rules.format(**values)
    text = template.for_modality(modality).format(**values)
    return Prompt(text=text, image_png=None if modality == "text" else request.image_png)


def chat_messages(prompt: Prompt) -> list[dict[str, Any]]:
    """One user turn in the Hugging Face chat format: the image placeholder first, then the text.

    OpenAI-style clients swap ``{"type": "image"}`` for an ``image_url`` part of their own.
    """
    content: list[dict[str, Any]] = []
    if prompt.image_png is not None:
        content.append({"type": "image"})
    content.append({"type": "text", "text": prompt.text})
    return [{"role": "user", "content": content}]
