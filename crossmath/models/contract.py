"""What a backend declares about itself, read from its class before any model is built.

The driver plans, identifies and schedules a model's work before any model loads: how many
sequences one call takes, whether several samples of a request would all be the same text,
which of its options cannot change an answer, where its weights come from, and whether it
answers each request the moment it ends. Each backend class says so in its ``contract``
(a ``BackendContract``); the driver reads it from the class a model config's ``_target_``
names (``BackendSpec.of``), never from which keys the config happens to hold.

The driver imports that class, so a backend's module stays light: its heavy machinery (torch,
transformers, an engine) is imported where the backend is built, in the inference actor.
Adding a backend is a class with a ``contract`` in ``crossmath/models/`` and a YAML in
``conf/model/``; nothing in the pipeline changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from crossmath.models.config import backend_arguments
from crossmath.models.weights import NO_WEIGHTS, WeightsSource

# Whether every sample of a request would get the same text: from the arguments the backend is
# built with (the config's, else the constructor's defaults) and, for a checkpoint, its
# shipped generation config when known.
Greedy = Callable[[Mapping[str, Any], "Mapping[str, Any] | None"], bool]


def always_greedy(arguments: Mapping[str, Any],
                  checkpoint_generation: Mapping[str, Any] | None = None) -> bool:
    """A backend whose reply ignores the sample index (the solver, the reader)."""
    return True


def never_greedy(arguments: Mapping[str, Any],
                 checkpoint_generation: Mapping[str, Any] | None = None) -> bool:
    """A backend whose samples differ (or that cannot tell): every sample is asked."""
    return False


@dataclass(frozen=True)
class BackendContract:
    """What the pipeline needs to know of a backend before building it.

    Options are named as the backend's constructor arguments (the keys of its model config):

    - ``call_sequences``: the argument sizing one call, in sequences decoded together (the hf
      backend's ``batch_size``, vLLM's ``max_num_seqs``, the OpenAI client's
      ``max_concurrency``); None: no limit (rule-based backends: calls of a few hundred).
    - ``answer_tokens``: the argument capping an answer's tokens, and ``image_pixels`` the
      (min, max) arguments bounding an image's pixels: a call's estimated tokens, when its
      token budget is capped (``resources.call_tokens``).
    - ``auto_dtype``: its ``dtype: auto`` becomes bfloat16 on a GPU, float32 on a CPU
      (``config.resolved_dtype``), resolved on the driver as the actor will resolve it.
    - ``non_shaping``: arguments that cannot change an answer's text (where it runs, how
      calls are sized, retries); wherever they appear in its config (nested too), they are
      left out of its identity. Every other argument counts, so a new option is safe.
    - ``weights``: where its weights come from and what of them shapes answers
      (``crossmath.models.weights``).
    - ``greedy``: whether every sample of a request would be the same text.
    - ``streams_answers``: an engine that batches continuously: it answers each request as
      it ends (``answers``) and takes the next call while one decodes.
    - ``requires``: an optional package its module needs when built, and how to install it:
      ``(package, install hint)``, checked at the door.
    """

    call_sequences: str | None = None
    answer_tokens: str | None = None
    image_pixels: tuple[str, str] | None = None
    auto_dtype: bool = False
    non_shaping: frozenset[str] = frozenset()
    weights: WeightsSource = NO_WEIGHTS
    greedy: Greedy = never_greedy
    streams_answers: bool = False
    requires: tuple[str, str] | None = None


@dataclass(frozen=True)
class BackendSpec:
    """A backend as a model config names it, before it is built: the config (its constructor
    arguments, and the prompt set the pipeline builds its prompts from), the constructor's
    defaults, and the contract its class declares. Plain data: it travels to the actors."""

    config: Mapping[str, Any]
    contract: BackendContract
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "BackendSpec":
        """The spec of the backend ``config`` names (its ``_target_`` class, imported here:
        backend modules are light). Raises ``ValueError`` saying what cannot be found."""
        backend = backend_class(config.get("_target_"))
        contract = getattr(backend, "contract", None)
        if not isinstance(contract, BackendContract):
            raise ValueError(f"{config['_target_']} declares no contract: give the class a "
                             "`contract = BackendContract(...)` (crossmath.models.contract)")
        return cls(dict(config), contract, constructor_defaults(backend))

    @property
    def target(self) -> str:
        return str(self.config["_target_"])

    def argument(self, name: str) -> Any:
        """The value the backend is built with: the config's, else the constructor's default."""
        return self.config.get(name, self.defaults.get(name))

    def arguments(self) -> dict[str, Any]:
        """The config as ``hydra.utils.instantiate`` builds the backend from it."""
        return backend_arguments(self.config)

    def call_sequences(self) -> int | None:
        """The sequences one call takes (None: no limit)."""
        name = self.contract.call_sequences
        return None if name is None else int(self.argument(name))

    def answer_tokens(self) -> int:
        """The most tokens of one answer (0 where the backend does not say)."""
        name = self.contract.answer_tokens
        return 0 if name is None else int(self.argument(name) or 0)

    def image_pixels(self) -> tuple[int, int] | None:
        """The (min, max) pixels an image is resized within; None: the model's own."""
        if self.contract.image_pixels is None:
            return None
        low, high = (self.argument(name) for name in self.contract.image_pixels)
        return None if low is None or high is None else (int(low), int(high))

    def decodes_greedily(self, checkpoint_generation: Mapping[str, Any] | None = None) -> bool:
        """Whether every sample of a request would get the same text."""
        return self.contract.greedy({**self.defaults, **self.config}, checkpoint_generation)


def decodes_greedily(model_config: Mapping[str, Any],
                     checkpoint_generation: Mapping[str, Any] | None = None) -> bool:
    """Whether every sample of a request to the backend ``model_config`` names would get the
    same text, so that more than one sample would only repeat the first (its contract's
    ``greedy``; ``checkpoint_generation``: the checkpoint's shipped generation config, when
    known)."""
    return BackendSpec.of(model_config).decodes_greedily(checkpoint_generation)


def backend_class(target: Any) -> type:
    """The class ``target`` (``module.Class``) names; ``ValueError`` says what is missing."""
    if not isinstance(target, str) or "." not in target:
        raise ValueError(f"must name a backend class, got {target!r}")
    module_name, _, class_name = target.rpartition(".")
    try:
        found = importlib.util.find_spec(module_name)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise ValueError(f"no module named {module_name!r} (from {target!r})")
    module = importlib.import_module(module_name)
    backend = getattr(module, class_name, None)
    if not isinstance(backend, type):
        raise ValueError(f"{module_name} has no class {class_name!r} (from {target!r})")
    return backend


def constructor_defaults(backend: type) -> dict[str, Any]:
    """The default value of each constructor argument that has one."""
    return {name: parameter.default
            for name, parameter in inspect.signature(backend).parameters.items()
            if parameter.default is not inspect.Parameter.empty}
