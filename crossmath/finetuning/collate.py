"""Training examples to model inputs: the evaluation's prompt, the target, loss on the target only.

An example row becomes the same prompt the evaluation would send (``puzzle_layout`` of the
model's prompt set, with the example's image), rendered with the model's chat template and
generation prompt, the image through the processor with the same size bounds. The target reply (and the
end-of-turn token, so the model learns to stop) is tokenised on its own and appended, which
keeps the prompt's tokens exactly those the model sees at evaluation. Labels are ``-100``
everywhere but on the target's tokens.

Batches are padded on the right: in training nothing is generated after the sequence, and the
attention mask keeps padding out of both attention and the multimodal position ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from crossmath.finetuning.modeling import ModelSpec
from crossmath.models.base import Prompt
from crossmath.models.hf import chat_prompt_text, decode_png, image_size_kwargs
from crossmath.models.prompts import load_prompt_template, puzzle_layout

IGNORE_INDEX = -100
IMAGE_KEYS = ("pixel_values", "image_grid_thw")  # concatenated across a batch; the rest is per token
EXAMPLE_COLUMNS = ("example_id", "modality", "grid", "image", "n_blanks", "value_range", "target")


@dataclass(frozen=True)
class EncodedExample:
    """One example's tensors: per-token rows of equal length (labels included), and image arrays."""

    example_id: str
    tokens: dict[str, torch.Tensor]
    images: dict[str, torch.Tensor]
    n_prompt_tokens: int

    @property
    def length(self) -> int:
        return int(self.tokens["input_ids"].shape[0])

    @property
    def n_target_tokens(self) -> int:
        return self.length - self.n_prompt_tokens


class ExampleEncoder:
    """Tokenises examples for one model: its processor, prompt set and chat-template options."""

    def __init__(self, processor: Any, spec: ModelSpec) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.template = load_prompt_template(spec.prompt)
        self.enable_thinking = spec.enable_thinking
        self.image_kwargs = image_size_kwargs(spec.min_pixels, spec.max_pixels)
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"{spec.path}: the tokenizer has no end-of-sequence token to end targets")
        self.end_of_turn = [self.tokenizer.eos_token_id]

    def prompt_text(self, prompt: Prompt) -> str:
        return chat_prompt_text(self.processor, prompt, self.enable_thinking)

    def example_prompt(self, row: Mapping[str, Any]) -> Prompt:
        """The prompt the evaluation shows for this example's puzzle, modality and image."""
        layout = puzzle_layout(self.template, row["modality"], row["grid"], row["n_blanks"],
                               tuple(row["value_range"]))
        return layout.with_image(row["image"] if row["modality"] != "text" else None)

    def encode_prompt(self, row: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The processor's output for the example's prompt, exactly as the evaluation builds it."""
        prompt = self.example_prompt(row)
        images = [decode_png(png) for png in prompt.images] or None
        return dict(self.processor(text=[self.prompt_text(prompt)], images=images,
                                   return_tensors="pt", **self.image_kwargs))

    def encode(self, row: Mapping[str, Any]) -> EncodedExample:
        features = self.encode_prompt(row)
        n_prompt = features["input_ids"].shape[1]
        target = self.tokenizer(row["target"], add_special_tokens=False)["input_ids"]
        target_ids = torch.tensor(target + self.end_of_turn, dtype=torch.long)
        tokens: dict[str, torch.Tensor] = {}
        images: dict[str, torch.Tensor] = {}
        for key, value in features.items():
            if key in IMAGE_KEYS:
                images[key] = value
                continue
            if value.ndim != 2 or value.shape != (1, n_prompt):
                raise ValueError(f"processor output {key!r} has shape {tuple(value.shape)}; expected "
                                 f"(1, {n_prompt}) per token or one of {IMAGE_KEYS}")
            tail = target_ids if key == "input_ids" else (
                torch.ones_like(target_ids) if key == "attention_mask" else torch.zeros_like(target_ids))
            tokens[key] = torch.cat([value[0].to(tail.dtype), tail])
        tokens["labels"] = torch.cat(
            [torch.full((n_prompt,), IGNORE_INDEX, dtype=torch.long), target_ids])
        return EncodedExample(row["example_id"], tokens, images, n_prompt)


def collate(examples: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """A right-padded batch; image arrays concatenated in example order (the model's order)."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    keys = set(examples[0].tokens)
    for example in examples[1:]:
        if set(example.tokens) != keys:
            raise ValueError(f"example {example.example_id} has token fields {sorted(example.tokens)}, "
                             f"example {examples[0].example_id} has {sorted(keys)}")
    length = max(example.length for example in examples)
    pad_values = {"input_ids": pad_token_id, "labels": IGNORE_INDEX}
    batch: dict[str, torch.Tensor] = {}
    for key in examples[0].tokens:
        rows = []
        for example in examples:
            row = example.tokens[key]
            rows.append(torch.nn.functional.pad(row, (0, length - row.shape[0]),
                                                value=pad_values.get(key, 0)))
        batch[key] = torch.stack(rows)
    for key in IMAGE_KEYS:
        parts = [example.images[key] for example in examples if key in example.images]
        if parts:
            batch[key] = torch.cat(parts)
    return batch
