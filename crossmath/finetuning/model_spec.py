"""The model to fine-tune as the door resolves it: ``ModelSpec``, read from a ``conf/model``
entry (an ``HFBackend`` config, the evaluation's), and the check that a config is one training
can start from. Plain values, without torch: the door (``crossmath.settings.train``) builds the
spec before anything heavy loads; ``crossmath.finetuning.modeling`` loads the model it names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from crossmath.models.prompts import PromptSet

HF_BACKEND_TARGET = "crossmath.models.hf.HFBackend"


def check_trainable(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``config`` (a ``conf/model`` entry) is a model training can
    start from: a local transformers model (``HFBackend``), without an adapter."""
    target = config.get("_target_")
    if target != HF_BACKEND_TARGET:
        raise ValueError(
            f"model {config.get('name')!r} uses {target!r}; fine-tuning needs a local "
            f"transformers model ({HF_BACKEND_TARGET}), e.g. model=tiny-random"
        )
    if config.get("adapter"):
        raise ValueError(
            "model.adapter is set: fine-tuning starts from the base weights (the adapter "
            "option is for evaluating a tuned model); set model.adapter=null"
        )


def weights_on_this_node(source: str | Mapping[str, Any]) -> str:
    """Where the weights ``source`` names lie on the node calling this: a path or Hub id as
    given, or the folder a ``_target_`` builder (``model=tiny-random``) returns, built here on
    first use (the builder is idempotent: it reuses a complete folder in its cache)."""
    if isinstance(source, Mapping):
        import hydra.utils

        return str(hydra.utils.instantiate(dict(source)))
    return str(source)


@dataclass(frozen=True)
class ModelSpec:
    """What training takes from a backend config, resolved once where the config is read (the
    door, on the driver), and sent whole to every worker: where the weights are, the prompt set
    (read: ``prompt_set`` is the set itself, never its name, so no worker reads it again) and
    the processor and chat-template options.

    ``weights`` is the config's ``model`` as given (a path or Hub id, or the ``_target_`` mapping
    of a builder such as ``crossmath.models.tiny.build_tiny_random``), and ``path`` the folder it
    gave on the node that built the spec. The location of the weights is the one thing a worker
    derives again (``on_this_node``): a builder writes its folder into a cache on the node it
    runs on, which on a multi-node cluster need not exist on a worker's node. Everything else is
    the driver's, read once.
    """

    path: str
    name: str
    prompt_set: PromptSet
    weights: str | Mapping[str, Any] | None = None  # None: ``path`` itself, the same on every node
    attn_implementation: str | None = None
    enable_thinking: bool | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None

    @classmethod
    def from_backend_config(cls, config: Mapping[str, Any], prompt_set: PromptSet) -> "ModelSpec":
        """Read a ``conf/model`` entry whose prompt set (``config["prompt"]``, or the default)
        the caller has resolved into ``prompt_set``; ``model`` may itself be a ``_target_`` that
        builds the folder, built here."""
        check_trainable(config)
        source = config["model"]
        if isinstance(source, Mapping):
            source = dict(source)
        path = weights_on_this_node(source)
        return cls(
            path=path,
            name=str(config.get("name") or Path(path).name),
            prompt_set=prompt_set,
            weights=source,
            attn_implementation=config.get("attn_implementation"),
            enable_thinking=config.get("enable_thinking"),
            min_pixels=config.get("min_pixels"),
            max_pixels=config.get("max_pixels"),
        )

    def on_this_node(self) -> "ModelSpec":
        """This spec with ``path`` where the weights lie on the node calling it (a worker's):
        a builder's folder is built there if missing; a path or Hub id is kept as it is."""
        if not isinstance(self.weights, Mapping):
            return self
        return dataclasses.replace(self, path=weights_on_this_node(self.weights))
