"""What a task hands the dataflow: units of requests, in one row shape, each request with its id.

A *unit* is one subject (a CrossMath puzzle in one style, a transfer task's item, a reply to
judge) and the requests that share its images; the task that asks builds the units
(``crossmath.tasks``), the pipeline answers them without knowing what they are about. A unit
is a dict with the fields of ``UNIT_TYPE``, its ``requests`` dicts with those of
``REQUEST_TYPE``; a unit whose requests show no image has modality ``TEXT_UNIT``.

A request's id (``request_id``) hashes the identity of the backend that answers it and
everything the request shows, so a prediction is reused only for the same request of the same
backend (docs/identity.md).
"""

from __future__ import annotations

from typing import Any, Mapping

import pyarrow as pa

from crossmath.core.fingerprints import digest

TEXT_UNIT = "text"  # the ``modality`` of a unit whose requests show no image

REQUEST_TYPE = pa.struct([
    ("request_id", pa.string()),
    ("modality", pa.string()),
    ("sample", pa.int64()),
    ("attempt", pa.int64()),
    ("prompt_texts", pa.list_(pa.string())),
    ("image_at", pa.list_(pa.int64())),
])
UNIT_TYPE = pa.struct([
    ("puzzle_id", pa.string()),  # what the unit asks about: a puzzle, or a transfer task's item
    ("name", pa.string()),
    ("grid", pa.string()),  # the puzzle's grid (drawn by the render stage); "" for a task item
    ("difficulty", pa.string()),
    ("n_blanks", pa.int64()),
    ("value_range", pa.list_(pa.int64())),
    ("style", pa.string()),
    ("modality", pa.string()),  # "text" for a unit whose requests show no image
    ("image_path", pa.string()),  # the release's own image of this puzzle and style, if any
    ("images", pa.list_(pa.binary())),  # encoded images: given, or rendered (null until then)
    ("options", pa.list_(pa.string())),  # a multiple-choice item's letters (rule-based backends)
    ("requests", pa.list_(REQUEST_TYPE)),
])


def request_id(backend_id: str, content: Mapping[str, Any]) -> str:
    """The id of one request: the backend's identity and everything the request shows."""
    return digest({"backend": backend_id, **content})
