"""The model a worker trains: base model loaded, LoRA added, wrapped for data parallelism."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crossmath.finetuning.collate import padding_token_id
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.modeling import (
    Precision,
    adapter_census,
    add_lora,
    load_base_model,
    load_initial_adapter,
    load_processor_for,
    log_adapter_census,
)
from crossmath.finetuning.policy_passes import load_reference_adapter
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.finetuning.worker_protocol import WorkerEnv


@dataclass
class WorkerModel:
    """The model a worker trains, prepared: LoRA on, wrapped for data parallelism, in train mode."""

    spec: ModelSpec
    precision: Precision
    processor: Any
    model: torch.nn.Module  # DDP-wrapped where there are several workers (``unwrap`` for peft's)
    counts: dict[str, int]  # trainable and total parameters

    @property
    def pad_token_id(self) -> int:
        return padding_token_id(self.processor.tokenizer)


def prepare_worker_model(spec: ModelSpec, settings: TrainSettings, env: WorkerEnv,
                         init_adapter: str | Path | None = None, *,
                         reference_adapter: str | Path | None = None) -> WorkerModel:
    """Load the base model of ``spec`` (the driver's, resolved at the door), add the adapters
    (with ``init_adapter``'s weights, if given), wrap.

    Only where the weights lie is derived here, on this worker's node (``spec.on_this_node``);
    the prompt set and every option come as the driver read them.
    ``reference_adapter``: an adapter loaded beside the trained one, frozen (GRPO's KL reference).
    """
    spec = spec.on_this_node()
    precision = Precision.resolve(settings.precision, env.device)
    processor = load_processor_for(spec)
    model = add_lora(load_base_model(spec, precision.weights), settings.lora,
                     gradient_checkpointing=settings.gradient_checkpointing)
    if init_adapter is not None:
        load_initial_adapter(model, Path(init_adapter), settings.lora)
    if reference_adapter is not None:
        load_reference_adapter(model, reference_adapter)
    census = adapter_census(model, settings.lora)
    if env.rank == 0:
        log_adapter_census(census)
    counts = {"trainable_parameters": census.trainable, "total_parameters": census.total}
    model = env.prepare_model(model, find_unused_parameters=settings.lora.vision_tower != "frozen")
    model.train()
    return WorkerModel(spec, precision, processor, model, counts)
