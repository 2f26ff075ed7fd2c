"""From puzzles to requests: puzzle × modality × style × sample, each with its identity.

Work is grouped in *units*: one (puzzle, style) pair whose image is rendered once and then
shared by every image and hybrid request and every sample of that pair. Text requests see no
picture, so they are made once per puzzle, under the style name ``markdown``, rather than
once per image style.

Each request carries its prompt's text parts and the place of its image (``prompt_texts``,
``image_at``), built here from the plan's prompt set; the image itself joins the row once it
is rendered (``expand_unit``). Without a prompt set (rule-based baselines) the text parts are
empty. Its ``request_id`` hashes the backend's identity and all of this content, the image by
its provenance (``crossmath.pipeline.identity``), so it is known before any image exists.

A request is *pending* until a saved attempt answered it, or until ``max_attempts`` attempts
failed; each pending request carries the number of the attempt it is about to make.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Mapping, Sequence

from crossmath.models.base import TEXT_STYLE
from crossmath.models.prompts import NO_PROMPT_ID, PromptLayout, PromptSet
from crossmath.pipeline.identity import (
    release_image_provenance,
    rendered_image_provenance,
    request_id,
)
from crossmath.pipeline.shards import SavedAttempt
from crossmath.puzzle.model import Puzzle


@dataclass(frozen=True)
class RequestPlan:
    modalities: Sequence[str]
    styles: Sequence[str]
    samples: int
    prompt: PromptSet | None
    backend_id: str
    max_attempts: int = 1

    @property
    def prompt_id(self) -> str:
        return NO_PROMPT_ID if self.prompt is None else self.prompt.id

    def layout(self, puzzle: Puzzle, modality: str) -> PromptLayout:
        """The prompt of ``puzzle`` shown in ``modality``, before its image exists."""
        if self.prompt is None:
            return PromptLayout((), None if modality == "text" else 0)
        return self.prompt.layout(modality, puzzle.markdown_table, len(puzzle.answer),
                                  tuple(puzzle.value_range))

    def __post_init__(self) -> None:
        unknown = set(self.modalities) - {"text", "image", "hybrid"}
        if unknown:
            raise ValueError(f"unknown modality {sorted(unknown)}; use text, image, hybrid")
        if self.samples < 1:
            raise ValueError("samples must be at least 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if any(m != "text" for m in self.modalities) and not self.styles:
            raise ValueError("image and hybrid requests need at least one style")

    def unit_modalities(self, style: str) -> list[str]:
        if style == TEXT_STYLE:
            return ["text"] if "text" in self.modalities else []
        return [m for m in self.modalities if m != "text"]

    @cached_property
    def style_provenance(self) -> dict[str, str]:
        """What each style's rendered images depend on (read once per plan)."""
        return {style: rendered_image_provenance(style) for style in self.styles}

    def _image_provenance(self, style: str, release_image: str | None) -> str | None:
        if style == TEXT_STYLE:
            return None
        if release_image:
            return release_image_provenance(release_image)
        return self.style_provenance[style]

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
                image_path = str(official_images.get((puzzle.name, style), ""))
                content = {"puzzle": puzzle.puzzle_id, "style": style,
                           "image": self._image_provenance(style, image_path),
                           "n_blanks": len(puzzle.answer), "value_range": list(puzzle.value_range)}
                requests = []
                for m in self.unit_modalities(style):
                    texts = list(layouts[m].texts)
                    image_at = [] if layouts[m].image_at is None else [layouts[m].image_at]
                    for s in range(self.samples):
                        identity = {**content, "modality": m, "sample": s, "prompt": texts,
                                    "image_at": image_at}
                        requests.append({"modality": m, "sample": s, "attempt": 1,
                                         "request_id": request_id(self.backend_id, identity),
                                         "prompt_texts": texts, "image_at": image_at})
                units.append({
                    "puzzle_id": puzzle.puzzle_id,
                    "name": puzzle.name,
                    "grid": puzzle.grid.to_markdown(as_written=True),  # drawn as the file wrote it
                    "difficulty": puzzle.difficulty,
                    "n_blanks": len(puzzle.answer),
                    "value_range": list(puzzle.value_range),
                    "style": style,
                    "modality": "text" if style == TEXT_STYLE else "image",
                    "image_path": image_path,
                    "requests": requests,
                })
        return units

    def pending(self, units: list[dict], saved: Mapping[str, SavedAttempt]) -> list[dict]:
        """Units with only their pending requests, each numbered with its next attempt; units
        left with none are dropped. Answered requests, and failed ones that used up
        ``max_attempts``, are not pending."""
        result = []
        for unit in units:
            requests = []
            for request in unit["requests"]:
                last = saved.get(request["request_id"])
                if last is None:
                    requests.append(request)
                elif last.failed and last.attempt < self.max_attempts:
                    requests.append({**request, "attempt": last.attempt + 1})
            if requests:
                result.append({**unit, "requests": requests})
        return result


def expand_unit(unit: dict, image: bytes | None) -> list[dict]:
    """The request rows of one rendered unit, each with its images (none for text)."""
    base = {k: v for k, v in unit.items() if k not in ("requests", "modality", "image_path", "image")}
    return [{**base, **request, "images": [image] if request["image_at"] else []}
            for request in unit["requests"]]
