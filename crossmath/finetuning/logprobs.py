"""Log-probabilities of target tokens, in chunks of positions: SFT's loss and GRPO's ratios.

Only the positions that predict a target token matter (a completion's, a reply's), and the
output head is the largest tensor a step makes: for 6,000-token completions, a micro-batch of
two and a ~152k vocabulary, full fp32 logits are about 7 GB a copy. So the model runs up to the
head's input (a forward pre-hook takes the hidden states at the target positions and hands the
head no rows), and the head then runs on ``chunk`` positions at a time, each chunk's logits
turned into log-probabilities at once. With gradients on, each chunk is activation-checkpointed:
backward recomputes its logits instead of keeping them, so at most one chunk's logits exist at a
time, forward or backward. No tensor of (all positions, vocabulary) is ever made.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.utils.checkpoint import checkpoint

from crossmath.finetuning.collate import IGNORE_INDEX
from crossmath.finetuning.train_settings import LOGPROB_CHUNK


def target_positions(labels: torch.Tensor) -> torch.Tensor:
    """Flat (row-major) indices of the positions whose next token is a target token."""
    predicts_target = torch.zeros_like(labels, dtype=torch.bool)
    predicts_target[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return predicts_target.flatten().nonzero().squeeze(1)


@contextlib.contextmanager
def head_inputs_at(model: torch.nn.Module, positions: torch.Tensor) -> Iterator[list[torch.Tensor]]:
    """Within the block, the model's output head receives no rows: the hidden states at the
    flat ``positions`` of the batch are appended to the yielded list instead (in that order)."""
    from crossmath.finetuning.modeling import unwrap

    captured: list[torch.Tensor] = []

    def take(module: torch.nn.Module, args: tuple) -> tuple:
        hidden = args[0].flatten(0, 1).index_select(0, positions)
        captured.append(hidden)
        return (hidden[:0],)

    handle = unwrap(model).get_output_embeddings().register_forward_pre_hook(take)
    try:
        yield captured
    finally:
        handle.remove()


def _chunk_logprobs(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    logits = head(hidden).float()
    if temperature != 1:
        logits = logits / temperature
    return -torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def head_logprobs(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
                  temperature: float = 1.0, chunk: int = LOGPROB_CHUNK) -> torch.Tensor:
    """log softmax(head(hidden) / T)[target] per row, ``chunk`` rows per head call."""
    parts = []
    for start in range(0, hidden.shape[0], chunk):
        args = (head, hidden[start:start + chunk], targets[start:start + chunk], temperature)
        if torch.is_grad_enabled():
            parts.append(checkpoint(_chunk_logprobs, *args, use_reentrant=False))
        else:
            parts.append(_chunk_logprobs(*args))
    return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)


def target_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                    positions: torch.Tensor | None = None, *, temperature: float = 1.0,
                    chunk: int = LOGPROB_CHUNK, **model_inputs) -> torch.Tensor:
    """log pi(target) at each position that predicts a target token, in row-major order.

    ``batch`` holds the model's inputs and ``labels`` (aligned with the inputs: position p
    predicts the label at p + 1). ``positions`` (from ``target_positions``) may be computed
    ahead on the CPU: found on the GPU, their count would stall the host. ``model_inputs`` are
    passed to the model too (e.g. precomputed vision outputs).
    """
    from crossmath.finetuning.modeling import unwrap

    inputs = dict(batch)
    labels = inputs.pop("labels")
    if positions is None:
        positions = target_positions(labels)
    with head_inputs_at(model, positions) as captured:
        model(**inputs, **model_inputs, use_cache=False)
    (hidden,) = captured
    targets = labels.flatten().index_select(0, positions + 1)
    head = unwrap(model).get_output_embeddings()
    return head_logprobs(head, hidden, targets, temperature, chunk)
