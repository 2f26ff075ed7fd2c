"""Training examples to model inputs: the evaluation's prompt, the target, loss on the target only.

An example row becomes the same prompt the evaluation would send (``puzzle_layout`` of the
model's prompt set, with the example's image), rendered with the model's chat template and
generation prompt, the image through the processor with the same size bounds. The target reply (and the
end-of-turn token, so the model learns to stop) is tokenised on its own and appended, which
keeps the prompt's tokens exactly those the model sees at evaluation. Labels are ``-100``
everywhere but on the target's tokens.

The same prompt encoding serves GRPO: ``encode_prompt_example`` is the prompt a rollout is
generated from, and ``with_reply`` appends the generated completion's token ids as the target.

Training batches are padded on the right: nothing is generated after the sequence, and the
attention mask keeps padding out of both attention and the multimodal position ids. Prompts to
generate from are padded on the left, as the evaluation's batched backend pads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from crossmath.finetuning.model_spec import ModelSpec
from crossmath.models.base import Prompt
from crossmath.models.hf import chat_prompt_text, decode_png, image_size_kwargs
from crossmath.models.prompts import puzzle_layout

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
        self.template = spec.prompt_set  # resolved at the door: nothing is read by name here
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
        """The example's prompt followed by its target reply and the end-of-turn token."""
        target = self.tokenizer(row["target"], add_special_tokens=False)["input_ids"]
        return with_reply(self.encode_prompt_example(row), target + self.end_of_turn)

    def encode_prompt_example(self, row: Mapping[str, Any]) -> EncodedExample:
        """The example's prompt alone (what generation starts from), without labels."""
        features = self.encode_prompt(row)
        n_prompt = features["input_ids"].shape[1]
        tokens: dict[str, torch.Tensor] = {}
        images: dict[str, torch.Tensor] = {}
        for key, value in features.items():
            if key in IMAGE_KEYS:
                images[key] = value
                continue
            if value.ndim != 2 or value.shape != (1, n_prompt):
                raise ValueError(f"processor output {key!r} has shape {tuple(value.shape)}; expected "
                                 f"(1, {n_prompt}) per token or one of {IMAGE_KEYS}")
            tokens[key] = value[0]
        return EncodedExample(row["example_id"], tokens, images, n_prompt)


def with_reply(prompt: EncodedExample, reply_ids: Sequence[int]) -> EncodedExample:
    """``prompt`` (labels-free, from ``encode_prompt_example``) followed by ``reply_ids``.

    The reply's tokens get attention 1 and 0 in every other per-token field; labels are the
    reply's ids and ``IGNORE_INDEX`` over the prompt.
    """
    reply = torch.tensor(list(reply_ids), dtype=torch.long)
    tokens: dict[str, torch.Tensor] = {}
    for key, value in prompt.tokens.items():
        tail = reply if key == "input_ids" else (
            torch.ones_like(reply) if key == "attention_mask" else torch.zeros_like(reply))
        tokens[key] = torch.cat([value.to(tail.dtype), tail])
    tokens["labels"] = torch.cat(
        [torch.full((prompt.n_prompt_tokens,), IGNORE_INDEX, dtype=torch.long), reply])
    return EncodedExample(prompt.example_id, tokens, prompt.images, prompt.n_prompt_tokens)


def padding_token_id(tokenizer: Any) -> int:
    """The id ``collate`` pads with: the tokenizer's pad token, else its end-of-sequence token."""
    return tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id


def collate(examples: Sequence[EncodedExample], pad_token_id: int,
            padding_side: str = "right") -> dict[str, torch.Tensor]:
    """A padded batch; image arrays concatenated in example order (the model's order).

    Training pads on the right; generation needs the prompts padded on the ``"left"``.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
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
            padding = length - row.shape[0]
            rows.append(torch.nn.functional.pad(
                row, (padding, 0) if padding_side == "left" else (0, padding),
                value=pad_values.get(key, 0)))
        batch[key] = torch.stack(rows)
    for key in IMAGE_KEYS:
        parts = [example.images[key] for example in examples if key in example.images]
        if parts:
            batch[key] = torch.cat(parts)
    return batch
