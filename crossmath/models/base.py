"""The one interface every backend implements, and the request/response records it trades.

A backend turns a batch of requests into one response each, in the same order. It never
raises for a bad answer: a model that answers garbage gets its garbage recorded, and a request
that failed gets ``error`` set. Construction does the heavy work (loading weights); it runs
once per Ray actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Protocol, Sequence

Modality = Literal["text", "image", "hybrid"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "hybrid")
# The style recorded for text requests: they show no picture, so no image style applies.
TEXT_STYLE = "markdown"


@dataclass(frozen=True)
class ModelRequest:
    """One prompt to answer: a puzzle shown in one modality (and style), sample ``sample``.

    ``grid_markdown`` is always present so baselines can read the puzzle's shape, but a
    backend shows it to the model only for text and hybrid; ``image_png`` is set for image
    and hybrid.
    """

    request_id: str
    modality: Modality
    grid_markdown: str
    image_png: bytes | None = None
    sample: int = 0
    n_blanks: int = 0
    value_range: tuple[int, int] = (0, 0)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], request_id: str | None = None) -> "ModelRequest":
        """A request from a pipeline or training row: the fields by name, the grid as ``grid``.

        The one place rows become requests, so training prompts are built exactly like
        evaluation prompts.
        """
        return cls(
            request_id=row["request_id"] if request_id is None else request_id,
            modality=row["modality"],
            grid_markdown=row["grid"],
            image_png=row["image"],
            sample=row.get("sample", 0),
            n_blanks=row["n_blanks"],
            value_range=tuple(row["value_range"]),
        )


@dataclass(frozen=True)
class ModelResponse:
    request_id: str
    output: str
    n_prompt_tokens: int = 0
    n_output_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None


class Backend(Protocol):
    """What the pipeline's inference stage calls."""

    name: str
    prompt_id: str

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        """One response per request, same order; never raises for a bad model answer."""
        ...
