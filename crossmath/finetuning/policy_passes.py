"""What GRPO's forward passes share: the policy without dropout, the reference policy, and each
prompt's vision tower output.

- **Dropout off.** Rollouts sample from the policy in eval mode; the update's log-probabilities
  must be of that same policy, so every dropout module (LoRA's ``lora_dropout`` included) stays
  in eval mode while the rest of the model trains (gradient checkpointing keys on the layers'
  training flag, which stays on). The old, current and reference log-probabilities, and the
  sampled tokens, are then all of one deterministic function per set of weights.
- **Reference policy** of the KL term (``grpo.kl_ref``): ``base``, the model with its adapters
  disabled (peft's ``disable_adapter``), or ``init``, the adapter GRPO started from
  (``init_adapter``), loaded a second time beside the trained one as the frozen adapter
  ``reference`` and made active for the reference pass only: no second copy of the base weights.
  Without an ``init_adapter`` the two are the same model (a fresh adapter changes nothing).
- **Vision once per prompt.** With a frozen vision tower, its output depends on the image alone,
  and the ``rollouts`` completions of a puzzle share one image. Each prompt's image is encoded
  once per step (no gradient), and every micro-batch of the update and of the reference pass
  hands the model those outputs (``mm_encoder_outputs``, which the Qwen-VL families accept in
  place of ``pixel_values``) instead of running the tower again for each completion.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from crossmath.finetuning.collate import EncodedExample
from crossmath.finetuning.modeling import TRAINED_ADAPTER, unwrap

log = logging.getLogger(__name__)

REFERENCE_ADAPTER = "reference"


def train_without_dropout(model: torch.nn.Module) -> None:
    """Training mode for the model, eval mode for each of its dropout modules."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.eval()


def load_reference_adapter(model: torch.nn.Module, folder: str | Path) -> None:
    """``folder``'s adapter beside the trained one, frozen, as ``REFERENCE_ADAPTER``."""
    policy = unwrap(model)
    policy.load_adapter(str(folder), adapter_name=REFERENCE_ADAPTER, is_trainable=False)
    policy.set_adapter(TRAINED_ADAPTER)  # the trained adapter stays the active, trainable one


@contextlib.contextmanager
def reference_policy(model: torch.nn.Module) -> Iterator[None]:
    """Within the block the model is the KL reference: the frozen ``REFERENCE_ADAPTER`` where
    one was loaded (``kl_ref: init``), else the base model (adapters disabled)."""
    policy = unwrap(model)
    if REFERENCE_ADAPTER not in getattr(policy, "peft_config", {}):
        with policy.disable_adapter():
            yield
        return
    policy.set_adapter(REFERENCE_ADAPTER, inference_mode=True)
    try:
        yield
    finally:
        policy.set_adapter(TRAINED_ADAPTER)  # trainable again; the reference frozen again


def accepts_vision_outputs(model: torch.nn.Module) -> bool:
    """Whether the model's multimodal core takes precomputed vision outputs."""
    core = getattr(unwrap(model).get_base_model(), "model", None)
    return core is not None and "mm_encoder_outputs" in inspect.signature(core.forward).parameters


class PromptVision:
    """Each prompt's vision tower output, computed once (no gradient), merged per micro-batch."""

    def __init__(self, model: torch.nn.Module, prompts: Sequence[EncodedExample],
                 device: torch.device) -> None:
        base = unwrap(model).get_base_model()
        self.outputs: dict[int, Any] = {}
        with torch.no_grad():
            for index, prompt in enumerate(prompts):
                if "pixel_values" in prompt.images:
                    self.outputs[index] = base.model.get_image_features(
                        prompt.images["pixel_values"].to(device),
                        prompt.images["image_grid_thw"].to(device), return_dict=True)

    def inputs_for(self, prompt_indices: Sequence[int]) -> dict[str, Any]:
        """The model's keyword arguments for a micro-batch of sequences of these prompts."""
        outputs = [self.outputs[index] for index in prompt_indices if index in self.outputs]
        if not outputs:
            return {}
        return {"mm_encoder_outputs": {"image": merge_vision_outputs(outputs)}}


def merge_vision_outputs(outputs: Sequence[Any]) -> Any:
    """One output for several prompts' images, in order: the per-image tuples ``pooler_output``
    (the image embeddings) and, where the family has them (Qwen3-VL), ``deepstack_features``
    (one such tuple per deepstack layer) joined."""
    first = outputs[0]
    merged: dict[str, Any] = {"pooler_output": tuple(t for o in outputs for t in o.pooler_output)}
    deepstack = getattr(first, "deepstack_features", None)
    if deepstack is not None:
        merged["deepstack_features"] = [tuple(t for o in outputs for t in o.deepstack_features[layer])
                                        for layer in range(len(deepstack))]
    return type(first)(**merged)


def without_pixels(inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A batch's inputs for a model handed precomputed vision outputs (``image_grid_thw``
    stays: the multimodal positions are computed from it)."""
    return {key: value for key, value in inputs.items() if key != "pixel_values"}
