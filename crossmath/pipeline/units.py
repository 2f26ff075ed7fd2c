"""The dataflow's unit of work, whatever asked it: requests that share one subject and its images.

A unit is one row of ``crossmath.core.requests.UNIT_TYPE``. What a unit is about depends on the
task that planned it (``crossmath.tasks``: a CrossMath puzzle in one style, one item of a
transfer task, a reply to judge), but the dataflow treats every unit alike: it renders the images of a unit that
still needs them (``calls.needs_render``), shows them to the unit's requests that have a place
for them, asks the backend and saves one prediction per request.

Each request either shows all of its unit's images (its ``image_at`` gives their places, one
each) or none (a text request). A request is *pending* until a saved attempt answered it, or
until ``max_attempts`` attempts failed; a pending request carries the number of the attempt it
is about to make.
"""

from __future__ import annotations

from typing import Mapping

from crossmath.pipeline.shards import SavedAttempt

# Unit fields that stay on the unit: a request row gets the rest, and the images it shows.
_UNIT_ONLY = ("requests", "modality", "image_path", "images")


def expand_unit(unit: dict, images: list[bytes] | None) -> list[dict]:
    """The request rows of one unit, each with the images it shows (none for text requests)."""
    base = {k: v for k, v in unit.items() if k not in _UNIT_ONLY}
    rows = []
    for request in unit["requests"]:
        shown = list(images or []) if request["image_at"] else []
        if len(shown) != len(request["image_at"]):
            raise ValueError(f"request {request['request_id']} places {len(request['image_at'])} "
                             f"image(s) but its unit has {len(shown)}")
        rows.append({**base, **request, "images": shown})
    return rows


def pending_units(units: list[dict], saved: Mapping[str, SavedAttempt],
                  max_attempts: int) -> list[dict]:
    """Units with only their pending requests, each numbered with its next attempt; units
    left with none are dropped. Answered requests, and failed ones that used up
    ``max_attempts``, are not pending."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    result = []
    for unit in units:
        requests = []
        for request in unit["requests"]:
            last = saved.get(request["request_id"])
            if last is None:
                requests.append(request)
            elif last.failed and last.attempt < max_attempts:
                requests.append({**request, "attempt": last.attempt + 1})
        if requests:
            result.append({**unit, "requests": requests})
    return result
