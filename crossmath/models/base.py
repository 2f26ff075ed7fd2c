"""The one interface every backend implements, and the records it trades.

A request carries the **final prompt**: the text parts and images of one user turn, in the order
the model sees them. Whoever plans the work builds it (the CrossMath prompt sets, the perception
probe, the transfer tasks, a client of the server); a backend only shows it to its model. That
keeps the prompt part of what a request *is*: its identity hashes the prompt itself, not the
name of the set it came from.

A backend turns a batch of requests into one response each, in the same order. It never raises
for a bad answer: a model that answers garbage gets its garbage recorded, and a request that
failed gets ``error`` set. Construction does the heavy work (loading weights); it runs once per
Ray actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Literal, Mapping, Protocol, Sequence

Modality = Literal["text", "image", "hybrid"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "hybrid")
# The style recorded for text requests: they show no picture, so no image style applies.
TEXT_STYLE = "markdown"

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Prompt:
    """One user turn: text parts and images, interleaved.

    ``image_at[i]`` is the index in ``texts`` before which image ``i`` stands: 0 puts it
    first, ``len(texts)`` last. Images are PNG (or any format Pillow reads) bytes.
    """

    texts: tuple[str, ...]
    images: tuple[bytes, ...] = ()
    image_at: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.image_at) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.image_at)} positions")
        if any(not 0 <= at <= len(self.texts) for at in self.image_at):
            raise ValueError(f"image positions {self.image_at} outside 0..{len(self.texts)}")
        if list(self.image_at) != sorted(self.image_at):
            raise ValueError(f"image positions {self.image_at} must not decrease")

    def parts(self) -> Iterator[str | bytes]:
        """Texts (``str``) and images (``bytes``) in the order the model sees them."""
        images = iter(zip(self.image_at, self.images))
        pending = next(images, None)
        for index, text in enumerate(self.texts):
            while pending is not None and pending[0] == index:
                yield pending[1]
                pending = next(images, None)
            yield text
        while pending is not None:
            yield pending[1]
            pending = next(images, None)

    @property
    def text(self) -> str:
        """All text parts joined with blank lines (for display and token estimates)."""
        return "\n\n".join(self.texts)


@dataclass(frozen=True)
class RequestSampling:
    """A request's own decoding, as an OpenAI client asks for it; None fields take the
    backend's values. ``temperature`` 0 is greedy; ``top_k`` 0 or -1 is no cut."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None


@dataclass(frozen=True)
class ModelRequest:
    """One prompt to answer, sample ``sample`` of it.

    ``request_id`` is the request's identity: equal ids mean the same work, whose answers a
    sampling backend must reproduce (its randomness depends on the id, never on the batch).
    ``max_new_tokens`` caps this request below the backend's own limit (a server client's
    ``max_tokens``). ``sampling`` is a server client's own decoding for this request
    (``temperature``, ``top_p``, ``top_k``; None: the backend's), honoured by backends that say
    ``request_sampling``; ``stop`` strings end the answer where the first of them begins. The
    puzzle fields, and the option letters of a transfer task's multiple-choice question, are
    for rule-based backends (the oracle, chance, test doubles), which read them instead of a
    prompt; models see only ``prompt``.
    """

    request_id: str
    prompt: Prompt
    sample: int = 0
    max_new_tokens: int | None = None
    modality: str = "text"
    grid_markdown: str = ""
    n_blanks: int = 0
    value_range: tuple[int, int] = (0, 0)
    options: tuple[str, ...] = ()
    sampling: RequestSampling | None = None
    stop: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any], request_id: str | None = None) -> "ModelRequest":
        """A request from a pipeline or training row.

        The row holds the prompt as ``prompt_texts``, ``images`` and ``image_at``, the puzzle
        as ``modality``, ``grid``, ``n_blanks`` and ``value_range``, and a question's option
        letters as ``options``. The one place rows become requests, so training prompts are
        exactly evaluation prompts.
        """
        prompt = Prompt(tuple(row["prompt_texts"]), tuple(row.get("images") or ()),
                        tuple(row.get("image_at") or ()))
        return cls(
            request_id=row["request_id"] if request_id is None else request_id,
            prompt=prompt,
            sample=row.get("sample", 0),
            modality=row.get("modality", "text"),
            grid_markdown=row.get("grid") or "",
            n_blanks=row.get("n_blanks") or 0,
            value_range=tuple(row.get("value_range") or (0, 0)),
            options=tuple(row.get("options") or ()),
        )


@dataclass(frozen=True)
class ModelResponse:
    """A backend's answer to one request.

    ``finish_reason`` is "stop" when the model ended its answer and "length" when it was cut
    at the token limit; None where the backend cannot tell (rule-based ones). ``error`` is set,
    and ``output`` empty, when the request could not be answered at all.
    """

    request_id: str
    output: str
    n_prompt_tokens: int = 0
    n_output_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None
    finish_reason: FinishReason | None = None


REFUSED = "refused by the server"


def refusal(status: int, detail: str) -> str:
    """The error of a request a server refused as wrong (a 4xx that no retry can change)."""
    return f"{REFUSED} (HTTP {status}): {detail}"


def is_refusal(error: str | None) -> bool:
    """Whether a response's ``error`` is a ``refusal``: asking again gets the same answer."""
    return bool(error) and error.startswith(REFUSED)


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Where the first of ``stops`` begins in ``text`` (an answer ends there), or None."""
    found = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    return min(found) if found else None


class Backend(Protocol):
    """What the pipeline's inference stage calls."""

    name: str

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        """One response per request, same order; never raises for a bad model answer."""
        ...
