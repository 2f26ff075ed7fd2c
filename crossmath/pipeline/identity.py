"""What makes a prediction what it is: the identities of a backend, a request, an evaluation.

A prediction is reused only when everything that could change its text is unchanged; see
``docs/identity.md`` for the rules as users meet them. Everything here runs on the driver
before any model loads.

- **Backend identity**: the model config resolved, minus the keys its backend's contract
  declares non-shaping (``crossmath.models.contract``; every other key counts, so a new option
  is safe by default) and the prompt set's name (the prompt's texts count in each request),
  with ``dtype: auto`` resolved as the inference actor will resolve it, every value that names
  a local file or folder replaced by its content fingerprint (checkpoint, adapter), and what
  the contract's weights source adds (``crossmath.models.weights``): a Hugging Face hub id
  replaced by the commit its snapshot comes from; for the reader the OCR engine (package,
  version, model file) and the reading's version.
- **Request identity** (``crossmath.core.requests.request_id``): the backend identity and the
  request's content, as the task that asks it says (for CrossMath: puzzle, modality, style,
  sample, the final prompt's texts and image places, and the image's provenance: a release
  image's bytes; for a rendered image, the style's definition, its font, the renderer's
  version and Pillow's; ``crossmath.tasks.crossmath.identity``).
- **Evaluation identity**: the backend identity and what the task asks (``Questions.settings``;
  for CrossMath the data's identity, every puzzle with its gold and the folders of the release
  images used, and the plan: modalities, styles by definition, samples, the prompts' texts).
  It names the results folder and finds the evaluation's MLflow run. A release image whose bytes change in place (a corrupted file
  repaired) stays in the same evaluation, but its requests are new ones: asked again, and the
  old predictions never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from crossmath.core.fingerprints import content_fingerprint, digest
from crossmath.models.config import ADAPTER_KEY, PROMPT_KEY, resolved_dtype
from crossmath.models.contract import BackendSpec
from crossmath.models.weights import IdentityError, local_path

__all__ = ["BackendIdentity", "IdentityError", "backend_identity"]


@dataclass(frozen=True)
class BackendIdentity:
    """The id of a backend's answer-shaping settings, and those settings as hashed."""

    id: str
    settings: dict[str, Any]
    checkpoint: Path | None  # the model's checkpoint folder on this machine, when there is one


def backend_identity(model_config: Mapping[str, Any], gpus: float,
                     adapter: Path | None = None) -> BackendIdentity:
    """The identity of the backend ``model_config`` builds, on an actor with ``gpus`` GPUs.

    ``adapter`` is the config's adapter folder as the door found it (``RunSettings.adapter``),
    counted by its content; without it (another model a task asks, a judge) the config's
    paths are looked up here.
    """
    spec = BackendSpec.of(model_config)
    ignored = spec.contract.non_shaping | {PROMPT_KEY}
    resolved = {} if adapter is None else {ADAPTER_KEY: {"content": content_fingerprint(adapter)}}
    settings = {key: resolved[key] if key in resolved else _shaping(value, ignored)
                for key, value in model_config.items() if key not in ignored}
    if spec.contract.auto_dtype and "dtype" in model_config:
        settings["dtype"] = resolved_dtype(model_config, gpus)
    weights = spec.contract.weights.identity(model_config)
    settings.update(weights.settings)
    return BackendIdentity(digest(settings), settings, weights.checkpoint)


def _shaping(value: Any, ignored: frozenset[str]) -> Any:
    """A config value as it counts for identity: files by content, ``ignored`` keys dropped."""
    if isinstance(value, Mapping):
        return {k: _shaping(v, ignored) for k, v in value.items() if k not in ignored}
    if isinstance(value, (list, tuple)):
        return [_shaping(v, ignored) for v in value]
    if isinstance(value, str):
        path = local_path(value)
        if path is not None:
            return {"content": content_fingerprint(path)}
    return value
