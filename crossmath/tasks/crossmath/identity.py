"""What a CrossMath request and evaluation are, for their ids: images by provenance, puzzles by
gold, prompts by text (``docs/identity.md``).

A request's image is known before it exists: a release image by its bytes, a rendered one by
what draws it (the style's definition, its font, the renderer's version and Pillow's), so a
request id is fixed before any rendering. The evaluation hashes its puzzles with their golds
and its distinct prompts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Sequence

import PIL

from crossmath.core.fingerprints import digest, file_fingerprint
from crossmath.drawing import RENDERER_VERSION, Style
from crossmath.puzzle.model import Puzzle


def rendered_image_provenance(style: Style) -> str:
    """What a rendered image of ``style`` depends on besides its grid: the style's definition,
    its font file, the renderer's output version and Pillow's version."""
    return digest({"style": dataclasses.asdict(style), "font": file_fingerprint(style.font_path),
                   "renderer": RENDERER_VERSION, "pillow": PIL.__version__})


def release_image_provenance(path: str | Path) -> str:
    """A release image by its bytes: a changed (or repaired) file is a new request."""
    return "file:" + file_fingerprint(path)


def data_identity(puzzles: Sequence[Puzzle]) -> str:
    """Which puzzles, in which order, each with its gold: everything that shapes the scores."""
    return digest([[p.puzzle_id, p.answer, p.step_labels, p.difficulty, list(p.value_range)]
                   for p in puzzles])


def prompts_identity(prompt_texts: Iterable[Sequence[str]]) -> str:
    """The distinct prompts of an evaluation, by their texts."""
    return digest(sorted({tuple(texts) for texts in prompt_texts}))
