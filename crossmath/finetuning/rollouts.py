"""GRPO rollouts: n sampled completions per prompt from the current policy, reproducibly.

Prompts are the evaluation's, token for token (``ExampleEncoder``: the model's prompt set and
chat template, the image through the processor with the model's size bounds). Generation is
batched: prompts padded on the left, a whole batch decoded by one ``generate`` call. Only
``grpo``'s sampling settings shape the draw: the checkpoint's own repetition penalty
(Qwen2.5-VL ships 1.05) is set back to 1.

Sampling is keyed (``crossmath.models.sampling``): completion ``s`` of example ``e`` at step
``k`` draws its noise from ``sequence_key(seed, "k/e/s")`` through a ``SeededSampler`` on top
of greedy decoding. A completion therefore depends on the policy, the prompt and that key
alone: not on ``batch_size``, on which worker generated it, on the other prompts of the batch,
nor on whether the run was resumed in between.

The model's multimodal placeholder tokens (image, video, vision-start) are suppressed: they are
never a valid answer, and a completion holding one could not be fed back to the model for the
update (it would claim an image that is not there).

A completion ends with the first stop token (kept: the model learns when to stop) or, without
one, at ``max_new_tokens``: then it is *truncated*, which the loop handles as configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from crossmath.finetuning.collate import EncodedExample, collate
from crossmath.models.sampling import SamplingSettings, SeededSampler, sequence_keys


@dataclass(frozen=True)
class Rollout:
    """One sampled completion of one prompt."""

    prompt_index: int  # position of its prompt in the list given to ``generate``
    sample: int
    token_ids: tuple[int, ...]  # generated ids, up to and including the stop token
    text: str  # decoded without special tokens, as the evaluation decodes
    truncated: bool  # no stop token within max_new_tokens


def rollout_identity(step: int, example_id: str, sample: int) -> str:
    """What a completion's sampling key hashes, with the run's seed."""
    return f"{step}/{example_id}/{sample}"


def stop_token_ids(model: torch.nn.Module, tokenizer) -> list[int]:
    """The ids ``generate`` stops at: the generation config's end-of-sequence ids and the
    tokenizer's end-of-sequence token."""
    configured = model.generation_config.eos_token_id
    ids = [i for i in (configured if isinstance(configured, list) else [configured]) if i is not None]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model has no end-of-sequence token configured")
    return ids


PLACEHOLDER_TOKENS = ("image_token_id", "video_token_id", "vision_start_token_id")


def placeholder_token_ids(model: torch.nn.Module) -> list[int]:
    """The ids of the model's multimodal placeholder tokens (Qwen-VL families name them so)."""
    config = model.config
    return [getattr(config, name) for name in PLACEHOLDER_TOKENS
            if isinstance(getattr(config, name, None), int)]


class RolloutGenerator:
    """Samples ``samples`` completions of each prompt, ``batch_size`` sequences per call."""

    def __init__(self, tokenizer, *, samples: int, max_new_tokens: int, batch_size: int,
                 sampling: SamplingSettings, seed: int) -> None:
        if samples < 1 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError("samples, max_new_tokens and batch_size must be at least 1")
        self.tokenizer = tokenizer
        self.samples = samples
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.sampling = sampling
        self.seed = seed
        pad = tokenizer.pad_token_id
        self.pad_token_id = tokenizer.eos_token_id if pad is None else pad

    @torch.no_grad()
    def generate(self, model: torch.nn.Module, prompts: Sequence[EncodedExample], step: int,
                 device: torch.device) -> list[Rollout]:
        """Every prompt's completions, prompt by prompt, samples in order.

        ``model`` is the policy itself (a peft model, not a DDP wrapper), in eval mode.
        """
        stops = stop_token_ids(model, self.tokenizer)
        suppressed = placeholder_token_ids(model)
        work = [(index, sample) for index in range(len(prompts)) for sample in range(self.samples)]
        rollouts: list[Rollout] = []
        for start in range(0, len(work), self.batch_size):
            chunk = work[start:start + self.batch_size]
            rollouts += self._generate_chunk(model, prompts, chunk, step, stops, suppressed, device)
        return rollouts

    def _generate_chunk(self, model: torch.nn.Module, prompts: Sequence[EncodedExample],
                        chunk: list[tuple[int, int]], step: int, stops: list[int],
                        suppressed: list[int], device: torch.device) -> list[Rollout]:
        batch = collate([prompts[index] for index, _ in chunk], self.pad_token_id, padding_side="left")
        batch = {key: value.to(device) for key, value in batch.items()}
        prompt_length = batch["input_ids"].shape[1]
        keys = sequence_keys(self.seed, [rollout_identity(step, prompts[index].example_id, sample)
                                         for index, sample in chunk], device)
        sequences = model.generate(
            **batch, do_sample=False, max_new_tokens=self.max_new_tokens, use_cache=True,
            logits_processor=[SeededSampler(keys, prompt_length, self.sampling)],
            pad_token_id=self.pad_token_id, eos_token_id=stops, suppress_tokens=suppressed or None,
            repetition_penalty=1.0)
        generated = sequences[:, prompt_length:].tolist()
        rollouts = []
        for (index, sample), tokens in zip(chunk, generated):
            end = next((i + 1 for i, token in enumerate(tokens) if token in stops), None)
            kept = tokens if end is None else tokens[:end]
            rollouts.append(Rollout(index, sample, tuple(kept),
                                    self.tokenizer.decode(kept, skip_special_tokens=True),
                                    truncated=end is None))
        return rollouts
