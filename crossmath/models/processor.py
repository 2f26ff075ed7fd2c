"""Load a VLM's processor without its video half.

transformers 5.x builds every Qwen-VL processor (Qwen2.5-VL, Qwen3-VL, Qwen3.5) from three
parts: image processor, tokenizer and video processor. The video processor needs torchvision,
which is absent on some machines (no wheel matches the CPU torch of the development box), so
``AutoProcessor.from_pretrained`` fails there although crossmath never sends a video.

The way around it here: ask ``AutoProcessor``'s own model-type mapping which processor class
the checkpoint uses, and load it through a subclass that lists only the image processor and the
tokenizer as its parts. Loading, token expansion, ``mm_token_type_ids`` and the chat template
are all the library's code; only the video part is never built. The image processor still comes
from ``AutoImageProcessor``, so it uses torchvision when present and Pillow otherwise, exactly as
``AutoProcessor`` would. The subclass keeps the base class's name so that a processor saved from
it (the tiny model) is an ordinary checkpoint for ``AutoProcessor`` on machines with torchvision.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from transformers import AutoConfig, ProcessorMixin
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING


@cache
def image_only(processor_class: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """``processor_class`` with the video processor dropped from its parts.

    ``ProcessorMixin`` reads the parts from ``get_attributes()`` and pairs them positionally with
    the arguments the base ``__init__`` passes on; with ``video_processor`` (the last part of the
    Qwen-VL processors) left out, the ``None`` the base passes for it is simply not paired.
    """
    parts = processor_class.get_attributes()
    if "video_processor" not in parts:
        return processor_class
    if parts[-1] != "video_processor":
        raise TypeError(f"{processor_class.__name__}: video processor is not its last part {parts}")

    @classmethod
    def get_attributes(cls) -> list[str]:
        return [part for part in parts if part != "video_processor"]

    return type(processor_class.__name__, (processor_class,), {
        "get_attributes": get_attributes,
        "__doc__": f"{processor_class.__name__} without its video processor (see {__name__}).",
        "__module__": __name__,
    })


def load_processor(model_path: str | Path, **kwargs: Any) -> ProcessorMixin:
    """The checkpoint's processor class, image-only, loaded from ``model_path``."""
    config = AutoConfig.from_pretrained(model_path)
    try:
        processor_class = PROCESSOR_MAPPING[type(config)]
    except KeyError:
        raise ValueError(
            f"{model_path}: no processor class is known for model type {config.model_type!r}"
        ) from None
    return image_only(processor_class).from_pretrained(model_path, **kwargs)
