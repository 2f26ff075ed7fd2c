"""Backend calls, planned before any work starts, so that each call fills the backend.

A GPU decodes 64 sequences in little more time than one (a decode step is bound by reading the
weights and the cache), so what a model backend costs is its number of calls, not its number
of requests. Ray Data batches count rows, and a fixed row count hands a backend that takes 64
sequences calls of 16. So the driver plans the calls itself, from the model's capacity
(``model_capacity``, read from the model config before any backend exists):

1. the pending requests are grouped by prompt: the samples of one (puzzle, style, modality)
   always travel together (a backend answers a prompt's samples in one go);
2. the groups are taken longest prompt first, so that a call holds prompts of similar length
   (little padding, and a memory problem shows up on the first call);
3. they are packed into calls up to the capacity: only the last call is partial.

A call travels through Ray Data as one row (``CALL_SCHEMA``): its units (``units``: a puzzle
in one style, or a transfer task's item), each with the requests of that unit the call asks
and the unit's images (given when planned, or once rendered). One row is one backend call and
one prediction shard, whatever Ray does with blocks; a retried row is a retried call.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import pyarrow as pa
from PIL import Image

from crossmath.core.requests import TEXT_UNIT, UNIT_TYPE
from crossmath.drawing import Style
from crossmath.models.contract import BackendSpec
from crossmath.pipeline.units import expand_unit
from crossmath.puzzle.grid import parse_markdown_grid

# Rule-based backends (oracle, random) have no capacity to fill; a call of them is a chunk of
# requests, kept this small so that a shard is a few hundred predictions.
RULE_BASED_CALL = 256

# Token estimates, used to order prompts and for the optional token budget. Qwen tokenizers
# split digits one by one, so a markdown grid is about 1.5 characters a token (prose is ~4:
# the estimate errs high). Qwen2.5-VL gives an image one token per 28 x 28 pixels (Qwen3-VL:
# 32 x 32, again an overestimate).
CHARS_PER_TEXT_TOKEN = 1.5
PIXELS_PER_IMAGE_TOKEN = 28 * 28

CALL_SCHEMA = pa.schema([
    ("call", pa.int64()),
    ("sequences", pa.int64()),
    ("units", pa.list_(UNIT_TYPE)),
])


@dataclass(frozen=True)
class CallCapacity:
    """What one backend call takes.

    ``sequences`` are decoded together, one per request (a greedy model runs one sample per
    prompt: ``evaluation.effective_samples`` sees to it). ``tokens`` optionally bounds the
    call's estimated KV cache: the sum over its sequences of prompt tokens plus
    ``new_tokens``. ``pixel_bounds`` are the model's image resize bounds (for the estimate).
    """

    sequences: int
    tokens: int | None = None
    new_tokens: int = 0
    pixel_bounds: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.sequences < 1:
            raise ValueError(f"a call must hold at least one sequence, not {self.sequences}")
        if self.tokens is not None and self.tokens < 1:
            raise ValueError(f"a call's token budget must be positive, not {self.tokens}")

    def describe(self) -> str:
        budget = f", at most {self.tokens} tokens" if self.tokens else ""
        return f"up to {self.sequences} sequences{budget}"


def model_capacity(model_config: Mapping[str, Any], sequences: int | None = None,
                   tokens: int | None = None) -> CallCapacity:
    """The capacity of one call of the model ``model_config`` describes (``conf/model/*.yaml``).

    Read from its backend's contract (``BackendContract.call_sequences``: the hf backend's
    ``batch_size``, vLLM's ``max_num_seqs``, the OpenAI client's ``max_concurrency``) before
    any backend is built; a backend with no limit (rule-based ones) gets calls of
    ``RULE_BASED_CALL`` requests. ``sequences`` (``resources.call_sequences``) overrides the
    backend's figure; ``tokens`` (``resources.call_tokens``) adds a token budget.
    """
    spec = BackendSpec.of(model_config)
    return CallCapacity(
        sequences=int(sequences or spec.call_sequences() or RULE_BASED_CALL),
        tokens=tokens,
        new_tokens=spec.answer_tokens(),
        pixel_bounds=spec.image_pixels(),
    )


def streams_answers(model_config: Mapping[str, Any]) -> bool:
    """Whether the backend is an engine that answers each request as it ends and takes the
    next call while one decodes (its contract says so): its actors run ``engine_stage``."""
    return BackendSpec.of(model_config).contract.streams_answers


@dataclass(frozen=True)
class _PromptGroup:
    """Requests of one unit that share one prompt (its samples), as one piece of a call."""

    unit: int  # index in the planned units
    requests: tuple[dict, ...]
    sequences: int
    prompt_tokens: int  # estimated, per sequence


def plan_calls(units: list[dict], capacity: CallCapacity,
               styles: Mapping[str, Style] | None = None) -> list[dict]:
    """The units' requests packed into calls (``CALL_SCHEMA`` rows as dicts), longest prompts
    first; every call but the last is full. ``styles`` (as given -> ``Style``, resolved at the
    door) size the images still to render; units that render none need none.

    Every request lands in exactly one call; the samples of a prompt share a call unless they
    alone exceed the capacity. A unit whose prompts land in two calls appears in both, each
    with its own requests (its image is then made once per call).
    """
    groups = [group for index, unit in enumerate(units)
              for group in _prompt_groups(index, unit, capacity, styles or {})]
    groups.sort(key=lambda group: group.prompt_tokens, reverse=True)  # stable: ties keep order
    calls: list[list[_PromptGroup]] = []
    sequences = tokens = 0
    for group in groups:
        group_tokens = group.sequences * (group.prompt_tokens + capacity.new_tokens)
        if calls and sequences + group.sequences <= capacity.sequences and (
                capacity.tokens is None or tokens + group_tokens <= capacity.tokens):
            calls[-1].append(group)
            sequences, tokens = sequences + group.sequences, tokens + group_tokens
        else:
            calls.append([group])
            sequences, tokens = group.sequences, group_tokens
    return [_call_row(number, units, members) for number, members in enumerate(calls)]


def _prompt_groups(index: int, unit: dict, capacity: CallCapacity,
                   styles: Mapping[str, Style]) -> Iterator[_PromptGroup]:
    by_modality: dict[str, list[dict]] = {}
    for request in unit["requests"]:
        by_modality.setdefault(request["modality"], []).append(request)
    images = image_tokens(unit, capacity.pixel_bounds, styles)  # once for all its prompts
    for requests in by_modality.values():
        tokens = estimated_prompt_tokens(requests[0], images)
        # A prompt's samples split only when they exceed a whole call.
        for start in range(0, len(requests), capacity.sequences):
            chunk = tuple(requests[start:start + capacity.sequences])
            yield _PromptGroup(index, chunk, len(chunk), tokens)


def estimated_prompt_tokens(request: dict, images: list[float]) -> int:
    """A rough token count of one request's prompt: its text, and the estimated tokens of its
    unit's ``images`` (``image_tokens``) when it shows them."""
    tokens = sum(len(text) for text in request["prompt_texts"]) / CHARS_PER_TEXT_TOKEN
    if request["image_at"]:
        for image in images:
            tokens += image
    return math.ceil(tokens)


def image_tokens(unit: dict, pixel_bounds: tuple[int, int] | None,
                 styles: Mapping[str, Style] | None = None) -> list[float]:
    """The estimated tokens of each image of a unit: from their sizes (a unit's given images)
    or the grid's size in the unit's style (an image still to render), each bounded as the
    model resizes it. A text unit has none."""
    if unit["modality"] == TEXT_UNIT:
        return []
    tokens = []
    for pixels in _image_pixels(unit, styles or {}):
        if pixel_bounds is not None:
            pixels = min(max(pixels, pixel_bounds[0]), pixel_bounds[1])
        tokens.append(pixels / PIXELS_PER_IMAGE_TOKEN)
    return tokens


def _image_pixels(unit: dict, styles: Mapping[str, Style]) -> list[int]:
    if unit.get("images"):
        sizes = []
        for data in unit["images"]:
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                sizes.append(image.width * image.height)
        return sizes
    grid = parse_markdown_grid(unit["grid"])
    return [grid.n_rows * grid.n_cols * unit_style(unit, styles).cell_size ** 2]


def unit_style(unit: Mapping[str, Any], styles: Mapping[str, Style]) -> Style:
    """The ``Style`` a unit's image is drawn in, among the ``styles`` resolved at the door
    (a style is never read by name here: on a worker its file may not exist)."""
    try:
        return styles[unit["style"]]
    except KeyError:
        raise ValueError(f"unit {unit['puzzle_id']}: style {unit['style']!r} is not among the "
                         f"styles resolved at the door ({', '.join(styles) or 'none'})") from None


def _call_row(number: int, units: list[dict], groups: list[_PromptGroup]) -> dict:
    """One call: its groups gathered back into their units, in order of first appearance."""
    requests: dict[int, list[dict]] = {}
    for group in groups:
        requests.setdefault(group.unit, []).extend(group.requests)
    return {
        "call": number,
        "sequences": sum(group.sequences for group in groups),
        "units": [{**units[index], "images": units[index].get("images"), "requests": asked}
                  for index, asked in requests.items()],
    }


def call_table(call: dict) -> pa.Table:
    """One call as a one-row Arrow table of ``CALL_SCHEMA``.

    A unit field the schema does not know is an error here, not a column lost on the way.
    """
    for unit in call["units"]:
        unknown = set(unit) - set(UNIT_TYPE.names)
        if unknown:
            raise ValueError(f"call {call['call']}: unit field(s) {sorted(unknown)} are not in "
                             f"crossmath.core.requests.UNIT_TYPE; add them there")
    return pa.Table.from_pylist([call], schema=CALL_SCHEMA)


def needs_render(unit: Mapping[str, Any]) -> bool:
    """Whether a unit of a call still lacks the image its requests show (text units show none)."""
    return unit["images"] is None and unit["modality"] != TEXT_UNIT


def call_requests(call: Mapping[str, Any]) -> list[dict]:
    """The request rows of one call (``CALL_SCHEMA`` row), each with its unit's images."""
    return [row for unit in call["units"] for row in expand_unit(unit, unit["images"])]
