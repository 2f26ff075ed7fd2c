"""From puzzles to requests: puzzle × modality × style × sample, each with its identity.

Work is grouped in *units* (``crossmath.core.requests``): one (puzzle, style) pair whose image
is rendered once and then shared by every image, hybrid and transcribe request and every sample
of that pair.
Text requests see no picture, so they are made once per puzzle, under the style name
``markdown``, rather than once per image style.

Each request carries its prompt's text parts and the place of its image (``prompt_texts``,
``image_at``), built here from the plan's prompt set; the image itself joins the row once it
is rendered (the pipeline's ``units.expand_unit``). Without a prompt set (rule-based baselines)
the text parts are empty. Its ``request_id`` hashes the backend's identity and all of this
content, the image by its provenance (``identity``), so it is known before any image exists.

The perception probe (``transcribe`` among the modalities) takes two rounds. The first asks,
per puzzle, style and sample, for the image written back as a table (modality ``transcribe``);
the second (``own_transcription_units``) shows each transcription back as a text puzzle
(modality ``transcribed``, T̂), under the style of the image it was read from. A second-round
request's identity holds the transcription it shows and the request that wrote it, so a
changed transcription is a new request, and resuming finds the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

from crossmath.core.requests import TEXT_UNIT, request_id
from crossmath.drawing import Style
from crossmath.metrics.transcription import TRANSCRIBE, TRANSCRIBED, read_transcription
from crossmath.models.base import MODALITIES, TEXT_STYLE
from crossmath.models.prompts import NO_PROMPT_ID, PromptLayout, PromptSet, transcription_layout
from crossmath.puzzle.model import Puzzle
from crossmath.tasks.crossmath.identity import (
    release_image_provenance,
    rendered_image_provenance,
)

# What the ``modalities`` option takes: the three of the benchmark, and the probe's first kind
# (which brings its second, ``transcribed``, along).
PLAN_MODALITIES = (*MODALITIES, TRANSCRIBE)


@dataclass(frozen=True)
class RequestPlan:
    """Every puzzle asked in each of ``modalities``, each image one in each of ``styles`` (the
    style as the run gives it, a name or a path, -> the ``Style`` read at the door), ``samples``
    times, with prompts from ``prompt``, of the backend ``backend_id``."""

    modalities: Sequence[str]
    styles: Mapping[str, Style]
    samples: int
    prompt: PromptSet | None
    backend_id: str

    @property
    def prompt_id(self) -> str:
        return NO_PROMPT_ID if self.prompt is None else self.prompt.id

    def layout(self, puzzle: Puzzle, modality: str) -> PromptLayout:
        """The prompt of ``puzzle`` shown in ``modality``, before its image exists."""
        if modality == TRANSCRIBE:
            return self._transcription_layout
        return self._puzzle_layout(puzzle, modality, puzzle.markdown_table)

    @cached_property
    def _transcription_layout(self) -> PromptLayout:
        return transcription_layout(self.prompt)

    def _puzzle_layout(self, puzzle: Puzzle, modality: str, grid: str) -> PromptLayout:
        if self.prompt is None:
            return PromptLayout((), None if modality == "text" else 0)
        return self.prompt.layout(modality, grid, len(puzzle.answer), tuple(puzzle.value_range))

    @property
    def probes(self) -> bool:
        """Whether the plan has the perception probe, hence a second round."""
        return TRANSCRIBE in self.modalities

    def __post_init__(self) -> None:
        unknown = set(self.modalities) - set(PLAN_MODALITIES)
        if unknown:
            raise ValueError(f"unknown modality {sorted(unknown)}; "
                             f"use {', '.join(PLAN_MODALITIES)}")
        if self.samples < 1:
            raise ValueError("samples must be at least 1")
        if any(m != "text" for m in self.modalities) and not self.styles:
            raise ValueError("image, hybrid and transcribe requests need at least one style")

    def unit_modalities(self, style: str) -> list[str]:
        if style == TEXT_STYLE:
            return ["text"] if "text" in self.modalities else []
        return [m for m in self.modalities if m != "text"]

    @cached_property
    def style_provenance(self) -> dict[str, str]:
        """What each style's rendered images depend on (hashed once per plan)."""
        return {name: rendered_image_provenance(style) for name, style in self.styles.items()}

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
                    **_puzzle_fields(puzzle),
                    "grid": puzzle.grid.to_markdown(as_written=True),  # drawn as the file wrote it
                    "style": style,
                    "modality": TEXT_UNIT if style == TEXT_STYLE else "image",
                    "image_path": image_path,
                    "requests": requests,
                })
        return units

    def own_transcription_units(self, puzzles: Iterable[Puzzle],
                                transcriptions: Iterable[Mapping[str, Any]]) -> list[dict]:
        """The probe's second round: each answered transcription (a ``transcribe`` prediction,
        failed ones left out) shown back as a text puzzle, one unit each, as the text modality
        shows a grid (``Transcription.fed_back``). Its sample is the transcription's."""
        by_id = {puzzle.puzzle_id: puzzle for puzzle in puzzles}
        units = []
        for row in transcriptions:
            if row["modality"] != TRANSCRIBE or row["error"] is not None:
                continue
            puzzle = by_id[row["puzzle_id"]]
            shown = read_transcription(row["output"] or "").fed_back()
            layout = self._puzzle_layout(puzzle, "text", shown)
            texts = list(layout.texts)
            identity = {"puzzle": puzzle.puzzle_id, "style": row["style"], "modality": TRANSCRIBED,
                        "sample": row["sample"], "prompt": texts, "image_at": [],
                        "n_blanks": len(puzzle.answer), "value_range": list(puzzle.value_range),
                        "transcription": {"request": row["request_id"], "shown": shown}}
            units.append({
                **_puzzle_fields(puzzle),
                "grid": shown,  # the grid as the model read it (rule-based backends read it)
                "style": row["style"],
                "modality": TEXT_UNIT,
                "image_path": "",
                "requests": [{"modality": TRANSCRIBED, "sample": row["sample"], "attempt": 1,
                              "request_id": request_id(self.backend_id, identity),
                              "prompt_texts": texts, "image_at": []}],
            })
        return units


def _puzzle_fields(puzzle: Puzzle) -> dict[str, Any]:
    """What every unit of a puzzle says about it."""
    return {"puzzle_id": puzzle.puzzle_id, "name": puzzle.name, "difficulty": puzzle.difficulty,
            "n_blanks": len(puzzle.answer), "value_range": list(puzzle.value_range)}
