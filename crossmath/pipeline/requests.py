"""From puzzles to requests: puzzle × modality × style × sample, each with a stable id.

Work is grouped in *units*: one (puzzle, style) pair whose image is rendered once and then
shared by every image and hybrid request and every sample of that pair. Text requests see no
picture, so they are made once per puzzle, under the style name ``markdown``, rather than
once per image style.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Sequence

from crossmath.models.base import TEXT_STYLE
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
    prompt_id: str
    model: str

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
            for style in styles:
                requests = [
                    {"modality": m, "sample": s,
                     "request_id": request_id(puzzle.puzzle_id, m, style, s, self.prompt_id, self.model)}
                    for m in self.unit_modalities(style)
                    for s in range(self.samples)
                ]
                units.append({
                    "puzzle_id": puzzle.puzzle_id,
                    "name": puzzle.name,
                    "grid": puzzle.markdown_table,
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
    """The request rows of one rendered unit."""
    base = {k: v for k, v in unit.items() if k not in ("requests", "modality", "image_path")}
    return [{**base, **request, "image": None if request["modality"] == "text" else image}
            for request in unit["requests"]]
