"""Where a backend's weights come from, and what of them shapes its answers.

A backend declares its weights source in its contract (``crossmath.models.contract``); the
driver asks the source, before any model loads, for the weights' identity (which goes into the
backend's identity: ``crossmath.pipeline.identity``) and for the checkpoint folder on this
machine, when there is one (its shipped generation config says whether sampling is greedy):

- ``NO_WEIGHTS``: rule-based backends (the solver, chance) have none.
- ``Checkpoint``: a transformers checkpoint named by an argument (``model``): a local folder
  (its content counts, as every local path in a config does), a Hugging Face hub id (the
  commit of its snapshot counts: from the local cache, else asked of the hub), or a builder
  config (``{_target_: ...}``, the tiny models: its arguments count).

A backend with weights of another kind (an OCR engine: ``crossmath.models.reader``) declares a
source of its own with the same ``identity`` method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

from crossmath.core.errors import UserError

HUB_TIMEOUT_S = 10


class IdentityError(UserError, ValueError):
    """A setting whose identity cannot be known (e.g. a hub model neither cached nor reachable)."""


@dataclass(frozen=True)
class WeightsIdentity:
    """What of a backend's weights shapes its answers beyond its config's own values
    (``settings``: entries added to, or replacing those of, the hashed config), and the
    checkpoint folder on this machine when there is one."""

    settings: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None


class WeightsSource(Protocol):
    """Where a backend's weights come from."""

    def identity(self, arguments: Mapping[str, Any]) -> WeightsIdentity:
        """The weights' identity for a backend built with ``arguments`` (its model config)."""
        ...


@dataclass(frozen=True)
class NoWeights:
    """A backend with no weights: its config says everything."""

    def identity(self, arguments: Mapping[str, Any]) -> WeightsIdentity:
        return WeightsIdentity()


NO_WEIGHTS = NoWeights()


@dataclass(frozen=True)
class Checkpoint:
    """A transformers checkpoint in the argument ``argument``: a local folder, a hub id, or a
    builder config."""

    argument: str = "model"

    def identity(self, arguments: Mapping[str, Any]) -> WeightsIdentity:
        model = arguments.get(self.argument)
        if not isinstance(model, str):  # built from a config: its arguments count
            return WeightsIdentity()
        folder = local_path(model)
        if folder is not None:  # counted by content, as every local path of a config
            return WeightsIdentity(checkpoint=folder)
        snapshot, folder = hub_snapshot(model)
        return WeightsIdentity({self.argument: snapshot}, folder)


def local_path(value: str) -> Path | None:
    """The file or folder ``value`` names on this machine, if it names one."""
    if not value or "\n" in value:
        return None
    path = Path(value).expanduser()
    return path if path.exists() else None


def hub_snapshot(repo_id: str) -> tuple[dict[str, str], Path | None]:
    """A hub model as ``{"hub": id, "revision": commit}`` (the commit names its content), and
    its snapshot folder when it is in this machine's cache."""
    from huggingface_hub import HfApi, try_to_load_from_cache  # only for hub ids

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
