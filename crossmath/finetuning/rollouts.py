"""GRPO rollouts: n sampled completions per prompt from the current policy, reproducibly.

Prompts are the evaluation's, token for token (``ExampleEncoder``: the model's prompt set and
chat template, the image through the processor with the model's size bounds). Generation is the
evaluation's own decode loop (``crossmath.models.decoding.Decoder``): the prompts of a batch are
padded on the left and prefilled once each (vision tower and KV cache computed once, then
expanded to the rows of its samples), and a row leaves the batch at its stop token or its cap.
Only ``grpo``'s sampling settings shape the draw: no repetition penalty (Qwen2.5-VL's checkpoint
ships 1.05, which never applies here).

Sampling is keyed (``crossmath.models.sampling``): completion ``s`` of example ``e`` at step
``k`` draws its noise from ``sequence_key(seed, "k/e/s")``. A completion therefore depends on
the policy, the prompt and that key alone: not on ``batch_size``, on which worker generated it,
on the other prompts of the batch, on whether its prompt's prefill was shared, nor on whether
the run was resumed in between.

The policy is a peft model; the ``Decoder`` runs it through its base model, whose layers peft
has adapted in place, so the adapters act (and ``disable_adapter`` turns them off) exactly as
in the peft model's own forward.

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
from transformers import SuppressTokensLogitsProcessor

from crossmath.finetuning.collate import EncodedExample, collate, padding_token_id
from crossmath.models.checkpoint_loading import stop_token_ids
from crossmath.models.decoding import Decoder, DecodeStats, RowPlan
from crossmath.models.sampling import sequence_key
from crossmath.models.sampling_modes import DecodingRule
from crossmath.models.sampling_settings import SamplingSettings


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


PLACEHOLDER_TOKENS = ("image_token_id", "video_token_id", "vision_start_token_id")


def placeholder_token_ids(model: torch.nn.Module) -> list[int]:
    """The ids of the model's multimodal placeholder tokens (Qwen-VL families name them so)."""
    config = model.config
    return [getattr(config, name) for name in PLACEHOLDER_TOKENS
            if isinstance(getattr(config, name, None), int)]


class RolloutGenerator:
    """Samples ``samples`` completions of each prompt, ``batch_size`` sequences per decode.

    ``sampling`` None decodes greedily (argmax: every sample of a prompt the same).
    """

    def __init__(self, tokenizer, *, samples: int, max_new_tokens: int, batch_size: int,
                 sampling: SamplingSettings | None, seed: int) -> None:
        if samples < 1 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError("samples, max_new_tokens and batch_size must be at least 1")
        self.tokenizer = tokenizer
        self.samples = samples
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.rule = DecodingRule(sampling, repetition_penalty=1.0)
        self.seed = seed
        self.pad_token_id = padding_token_id(tokenizer)
        self.last_stats: list[DecodeStats] = []  # one per decode of the last ``generate`` call

    def generate(self, policy: torch.nn.Module, prompts: Sequence[EncodedExample], step: int,
                 device: torch.device) -> list[Rollout]:
        """Every prompt's completions, prompt by prompt, samples in order.

        ``policy`` is the policy itself (a peft model, not a DDP wrapper), in eval mode.
        """
        suppressed = placeholder_token_ids(policy)
        decoder = Decoder(policy, stop_token_ids(policy, self.tokenizer), self.rule,
                          logits_processor_factory=lambda: [
                              SuppressTokensLogitsProcessor(suppressed, device=device)])
        work = [(index, sample) for index in range(len(prompts)) for sample in range(self.samples)]
        self.last_stats = []
        rollouts: list[Rollout] = []
        for start in range(0, len(work), self.batch_size):
            chunk = work[start:start + self.batch_size]
            rollouts += self._decode_chunk(decoder, prompts, chunk, step, device)
        return rollouts

    def _decode_chunk(self, decoder: Decoder, prompts: Sequence[EncodedExample],
                      chunk: list[tuple[int, int]], step: int, device: torch.device
                      ) -> list[Rollout]:
        """One decode: each distinct prompt of ``chunk`` prefilled once, one row per sample."""
        distinct = list(dict.fromkeys(index for index, _ in chunk))
        position = {index: number for number, index in enumerate(distinct)}
        batch = collate([prompts[index] for index in distinct], self.pad_token_id,
                        padding_side="left")
        plans = [RowPlan(position[index], self.max_new_tokens,
                         sequence_key(self.seed, rollout_identity(step, prompts[index].example_id,
                                                                  sample)))
                 for index, sample in chunk]
        outputs, stats = decoder.decode({k: v.to(device) for k, v in batch.items()}, plans)
        self.last_stats.append(stats)
        return [Rollout(index, sample, tuple(output.tokens),
                        self.tokenizer.decode(output.tokens, skip_special_tokens=True),
                        truncated=not output.stopped)
                for (index, sample), output in zip(chunk, outputs)]
