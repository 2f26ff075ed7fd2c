"""What makes a prediction what it is: the identities of a backend, a request, an evaluation.

A prediction is reused only when everything that could change its text is unchanged; see
``docs/identity.md`` for the rules as users meet them. Everything here runs on the driver
before any model loads.

- **Backend identity**: the model config resolved, minus the keys listed in
  ``NON_SHAPING_KEYS`` (every other key counts, so a new option is safe by default), with
  ``dtype: auto`` resolved as the inference actor will resolve it, every value that names a
  local file or folder replaced by its content fingerprint (checkpoint, adapter), a
  Hugging Face hub id replaced by the commit its snapshot comes from, and for the reader the
  OCR engine (package, version, model file) and the reading's version.
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
from crossmath.models.config import PROMPT_KEY, resolved_dtype
from crossmath.models.ocr import EngineUnavailable, engine_identity
from crossmath.reading import READING_VERSION

# Keys that cannot change an answer's text, wherever they appear in a model config.
NON_SHAPING_KEYS = frozenset({
    "batch_size",  # how many sequences share a call (batch invariance is the backend's promise)
    "device",  # where the model runs; its effect on dtype is resolved, see resolved_dtype
    "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s",  # HTTP retries
    "max_concurrency",  # requests in flight at once
    "api_key_env",  # where the API key is read from
    "cache_dir",  # where a model built on first use is kept
    # vLLM's engine: how many sequences share its batch, over how many GPUs, in how much memory
    # (vLLM promises no batch invariance; docs/vllm.md says what that means for a rerun)
    "max_num_seqs", "tensor_parallel_size", "gpu_memory_utilization",
    PROMPT_KEY,  # the prompt set: the prompt's texts are part of each request instead
})
# Backends whose ``model`` may be a Hugging Face hub id.
HUB_BACKENDS = frozenset({"crossmath.models.hf.HFBackend",
                          "crossmath.models.vllm_backend.VLLMBackend"})
HUB_TIMEOUT_S = 10
# Backends that read pictures with the OCR engine: its version and model file, and the
# reading's version, shape their answers (and a missing engine stops the run here).
OCR_BACKENDS = frozenset({"crossmath.models.reader.ReaderBackend"})


class IdentityError(ValueError):
    """A setting whose identity cannot be known (e.g. a hub model neither cached nor reachable)."""


@dataclass(frozen=True)
class BackendIdentity:
    """The id of a backend's answer-shaping settings, and those settings as hashed."""

    id: str
    settings: dict[str, Any]
    checkpoint: Path | None  # the model's checkpoint folder on this machine, when there is one


def backend_identity(model_config: Mapping[str, Any], gpus: float) -> BackendIdentity:
    """The identity of the backend ``model_config`` builds, on an actor with ``gpus`` GPUs."""
    settings = {key: _shaping(value) for key, value in model_config.items()
                if key not in NON_SHAPING_KEYS}
    if "dtype" in model_config:
        settings["dtype"] = resolved_dtype(model_config, gpus)
    if model_config.get("_target_") in OCR_BACKENDS:
        settings["ocr"] = _ocr_engine()
    checkpoint = None
    model = model_config.get("model")
    if model_config.get("_target_") in HUB_BACKENDS and isinstance(model, str):
        checkpoint = _local_path(model)
        if checkpoint is None:
            settings["model"], checkpoint = _hub_snapshot(model)
    return BackendIdentity(digest(settings), settings, checkpoint)


def _ocr_engine() -> dict[str, Any]:
    """The OCR engine's identity and the reading's version; the engine missing is the user's
    to fix (the ``reader`` extra), said in one line."""
    try:
        return {**engine_identity(), "reading": READING_VERSION}
    except EngineUnavailable as error:
        raise IdentityError(str(error)) from None


def _shaping(value: Any) -> Any:
    """A config value as it counts for identity: files by content, non-shaping keys dropped."""
    if isinstance(value, Mapping):
        return {k: _shaping(v) for k, v in value.items() if k not in NON_SHAPING_KEYS}
    if isinstance(value, (list, tuple)):
        return [_shaping(v) for v in value]
    if isinstance(value, str):
        path = _local_path(value)
        if path is not None:
            return {"content": content_fingerprint(path)}
    return value


def _local_path(value: str) -> Path | None:
    if not value or "\n" in value:
        return None
    path = Path(value).expanduser()
    return path if path.exists() else None


def _hub_snapshot(repo_id: str) -> tuple[dict[str, str], Path | None]:
    """A hub model as ``{"hub": id, "revision": commit}`` (the commit names its content), and
    its snapshot folder when it is in this machine's cache."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        snapshot = Path(cached).parent
        return {"hub": repo_id, "revision": snapshot.name}, snapshot
    try:
        revision = HfApi().model_info(repo_id, timeout=HUB_TIMEOUT_S).sha
    except Exception as error:  # offline, unknown repo, no access: all end the same way
        raise IdentityError(
            f"model {repo_id!r} is neither a local folder nor in the Hugging Face cache here, and "
            f"the hub cannot tell its revision ({type(error).__name__}): download it first "
            f"(hf download {repo_id}) or give the checkpoint folder as model.model=/path") from None
    return {"hub": repo_id, "revision": revision}, None
