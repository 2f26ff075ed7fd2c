"""From puzzles to requests: puzzle × modality × style × sample, each with a stable id.

Work is grouped in *units*: one (puzzle, style) pair whose image is rendered once and then
shared by every image and hybrid request and every sample of that pair. Text requests see no
picture, so they are made once per puzzle, under the style name ``markdown``, rather than
once per image style.

Each request carries its prompt's text parts and the place of its image (``prompt_texts``,
``image_at``), built here from the plan's prompt set; the image itself joins the row once it
is rendered (``expand_unit``). Without a prompt set (rule-based baselines) the text parts are
empty.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Sequence

from crossmath.models.base import TEXT_STYLE
from crossmath.models.prompts import NO_PROMPT_ID, PromptLayout, PromptTemplate, puzzle_layout
from crossmath.puzzle.model import Puzzle


def request_id(puzzle_id: str, modality: str, style: str, sample: int, prompt_id: str,
               model: str) -> str:
    """Stable id of one request: the same work always gets the same id, so reruns skip it."""
    key = "\x1f".join([puzzle_id, modality, style, str(sample), prompt_id, model])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class RequestPlan:
    modalities: Sequence[str]
    styles: Sequence[str]
    samples: int
    prompt: PromptTemplate | None
    model: str

    @property
    def prompt_id(self) -> str:
        return NO_PROMPT_ID if self.prompt is None else self.prompt.id

    def layout(self, puzzle: Puzzle, modality: str) -> PromptLayout:
        """The prompt of ``puzzle`` shown in ``modality``, before its image exists."""
        if self.prompt is None:
            return PromptLayout((), None if modality == "text" else 0)
        return puzzle_layout(self.prompt, modality, puzzle.markdown_table, len(puzzle.answer),
                             tuple(puzzle.value_range))

    def __post_init__(self) -> None:
        unknown = set(self.modalities) - {"text", "image", "hybrid"}
        if unknown:
            raise ValueError(f"unknown modality {sorted(unknown)}; use text, image, hybrid")
        if self.samples < 1:
            raise ValueError("samples must be at least 1")
        if any(m != "text" for m in self.modalities) and not self.styles:
            raise ValueError("image and hybrid requests need at least one style")

    def unit_modalities(self, style: str) -> list[str]:
        if style == TEXT_STYLE:
            return ["text"] if "text" in self.modalities else []
        return [m for m in self.modalities if m != "text"]

    def units(self, puzzles: Iterable[Puzzle], official_images: dict | None = None) -> list[dict]:
        """One row per (puzzle, style) with the ids of its requests.

        ``official_images`` maps (puzzle name, style) to the release's PNG path, used instead
        of rendering when present.
        """
        official_images = official_images or {}
        styles = ([TEXT_STYLE] if "text" in self.modalities else []) + (
            list(self.styles) if self.unit_modalities("_") else []
        )
        units = []
        for puzzle in puzzles:
            layouts = {m: self.layout(puzzle, m) for m in self.modalities}
            for style in styles:
                requests = [
                    {"modality": m, "sample": s,
                     "request_id": request_id(puzzle.puzzle_id, m, style, s, self.prompt_id, self.model),
                     "prompt_texts": list(layouts[m].texts),
                     "image_at": [] if layouts[m].image_at is None else [layouts[m].image_at]}
                    for m in self.unit_modalities(style)
                    for s in range(self.samples)
                ]
                units.append({
                    "puzzle_id": puzzle.puzzle_id,
                    "name": puzzle.name,
                    "grid": puzzle.grid.to_markdown(as_written=True),  # drawn as the file wrote it
                    "difficulty": puzzle.difficulty,
                    "n_blanks": len(puzzle.answer),
                    "value_range": list(puzzle.value_range),
                    "style": style,
                    "modality": "text" if style == TEXT_STYLE else "image",
                    "image_path": str(official_images.get((puzzle.name, style), "")),
                    "requests": requests,
                })
        return units


def drop_done(units: list[dict], done: set[str]) -> list[dict]:
    """Units with their finished requests removed, and units left with none dropped."""
    pending = []
    for unit in units:
        requests = [r for r in unit["requests"] if r["request_id"] not in done]
        if requests:
            pending.append({**unit, "requests": requests})
    return pending


def expand_unit(unit: dict, image: bytes | None) -> list[dict]:
    """The request rows of one rendered unit, each with its images (none for text)."""
    base = {k: v for k, v in unit.items() if k not in ("requests", "modality", "image_path", "image")}
    return [{**base, **request, "images": [image] if request["image_at"] else []}
            for request in unit["requests"]]
