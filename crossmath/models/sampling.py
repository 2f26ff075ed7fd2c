"""Sampling whose randomness belongs to each sequence, never to the batch it is decoded in.

``torch.manual_seed`` once per ``generate`` call makes a sample's text depend on which other
requests shared the call, in which order, and whether the run was resumed. Here every sequence
carries a 64-bit *key* (from the run's seed and the request's identity), and the noise for
token ``t`` at decoding step ``s`` is a pure function of ``(key, s, t)``: a counter-based hash,
computed with exact integer arithmetic on whatever device holds the logits.

The draw uses the Gumbel-max form of sampling: ``argmax(logits / T + g)`` with ``g`` standard
Gumbel noise is a sample from ``softmax(logits / T)``. The noise is added by a logits processor
and the decoding itself is greedy, so a row's token depends only on that row's logits and key:
batch size, padding, the order of requests and resumes change nothing (up to the floating-point
differences of the forward pass itself). Top-k and top-p act on the logits before the noise, as
the usual warpers do, so the same distribution is sampled.

Torch-only (no transformers import): the processor has the ``(input_ids, scores) -> scores``
signature of a transformers ``LogitsProcessor`` and can be passed in a ``logits_processor`` list.
"""

from __future__ import annotations

from typing import Sequence

import torch

from crossmath.models.sampling_settings import SamplingSettings
from crossmath.models.sequence_keys import sequence_key

_MASK32 = 0xFFFFFFFF
_UNIFORM_BITS = 24  # float32 holds 24 significant bits: the uniforms are exact multiples of 2^-24
# Candidates beyond top_k scored when top_k is set, to catch ties with the k-th score.
CANDIDATE_MARGIN = 32


def sequence_keys(seed: int, identities: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """``sequence_key`` for each identity, as an int64 tensor on ``device``."""
    return torch.tensor([sequence_key(seed, i) for i in identities], dtype=torch.int64,
                        device=device)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply, constants of the "lowbias32" family).

    ``x`` holds values in [0, 2^32) in int64; each product stays below 2^63, so the arithmetic
    is exact and identical on every device.
    """
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & _MASK32
    return x ^ (x >> 15)


def uniform_noise(keys: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """Uniforms in (0, 1), shape ``(len(keys), vocab_size)``: entry ``[i, t]`` depends only on
    ``(keys[i], step, t)``."""
    tokens = torch.arange(vocab_size, dtype=torch.int64, device=keys.device).unsqueeze(0)
    return uniform_noise_at(keys, step, tokens)


def uniform_noise_at(keys: torch.Tensor, step: int, tokens: torch.Tensor) -> torch.Tensor:
    """``uniform_noise`` at the given token ids only: ``tokens`` is ``(1 or len(keys), n)``."""
    keys = keys.to(torch.int64).unsqueeze(1)
    tokens = tokens.to(torch.int64)
    state = _mix32((keys & _MASK32) ^ _mix32(torch.full_like(keys, step & _MASK32)))
    state = _mix32(state ^ ((keys >> 32) & _MASK32))
    bits = _mix32(state ^ _mix32(tokens))
    top = (bits >> (32 - _UNIFORM_BITS)).to(torch.float32)
    return (top + 0.5) / float(1 << _UNIFORM_BITS)


def gumbel_noise(keys: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """Standard Gumbel noise, ``-log(-log(u))``, for each (key, token) at ``step``."""
    return -torch.log(-torch.log(uniform_noise(keys, step, vocab_size)))


def gumbel_noise_at(keys: torch.Tensor, step: int, tokens: torch.Tensor) -> torch.Tensor:
    """``gumbel_noise`` at the given token ids only (see ``uniform_noise_at``)."""
    return -torch.log(-torch.log(uniform_noise_at(keys, step, tokens)))


def warp(scores: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """Float32 logits with ``settings``' temperature applied and the cut-off tokens (top-k,
    then top-p) at ``-inf``."""
    scores = scores.float() / settings.temperature
    if 0 < settings.top_k < scores.shape[-1]:
        kth = torch.topk(scores, settings.top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if settings.top_p < 1:
        ordered, order = torch.sort(scores, dim=-1, descending=True)
        drop_sorted = top_p_drops(ordered, settings.top_p)
        drop = torch.empty_like(drop_sorted).scatter_(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def top_p_drops(ordered: torch.Tensor, top_p: float) -> torch.Tensor:
    """Which of the descending ``ordered`` scores top-p cuts: a token stays if the mass of
    the tokens scored strictly higher is below ``top_p`` (the first always stays). Equal
    scores stay or go together, so the cut never depends on how a sort orders ties."""
    probabilities = ordered.softmax(dim=-1)
    before = probabilities.cumsum(dim=-1) - probabilities
    positions = torch.arange(ordered.shape[-1], device=ordered.device).expand_as(ordered)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    first_of_tie = positions.masked_fill(~starts, 0).cummax(dim=-1).values
    return before.gather(-1, first_of_tie) >= top_p


class SeededSampler:
    """A logits processor that turns greedy decoding into keyed sampling.

    ``keys`` has one entry per row of the batch ``generate`` decodes (after any expansion to
    several return sequences), in row order. ``prompt_length`` is the padded prompt length, so
    the decoding step is ``input_ids.shape[1] - prompt_length`` for every row.
    """

    def __init__(self, keys: torch.Tensor, prompt_length: int, settings: SamplingSettings) -> None:
        self.keys = keys
        self.prompt_length = prompt_length
        self.settings = settings

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = self._step(input_ids)
        warped = warp(scores, self.settings)
        noise = gumbel_noise(self.keys.to(scores.device), step, scores.shape[-1])
        return warped + noise

    def choose(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Each row's sampled token: the argmax of what ``__call__`` returns.

        With ``top_k`` set, only the candidates are warped and get noise (a few dozen tokens
        instead of the vocabulary): the top ``top_k + CANDIDATE_MARGIN`` scores, of which those
        below the k-th are cut, so ties with the k-th stay in as the full warp keeps them. A
        row whose ties run past the margin takes the full path. Either way the path depends
        on the row's own scores only.
        """
        k, vocab = self.settings.top_k, scores.shape[-1]
        width = k + CANDIDATE_MARGIN
        if k <= 0 or width >= vocab:
            return self(input_ids, scores).argmax(dim=-1)
        step = self._step(input_ids)
        values, tokens = torch.topk(scores.float() / self.settings.temperature, width, dim=-1)
        kth = values[:, k - 1:k]
        overflow = values[:, -1] == kth[:, 0]  # descending: the last candidate ties the k-th
        values = values.masked_fill(values < kth, float("-inf"))
        if self.settings.top_p < 1:
            values = values.masked_fill(top_p_drops(values, self.settings.top_p), float("-inf"))
        noise = gumbel_noise_at(self.keys.to(scores.device), step, tokens)
        chosen = tokens.gather(1, (values + noise).argmax(dim=-1, keepdim=True))[:, 0]
        if overflow.any():
            rows = overflow.nonzero()[:, 0]
            full = SeededSampler(self.keys[rows.to(self.keys.device)], self.prompt_length,
                                 self.settings)
            chosen[rows] = full(input_ids[rows], scores[rows]).argmax(dim=-1)
        return chosen

    def _step(self, input_ids: torch.Tensor) -> int:
        if input_ids.shape[0] != self.keys.shape[0]:
            raise ValueError(f"{input_ids.shape[0]} rows to sample but {self.keys.shape[0]} keys")
        return input_ids.shape[1] - self.prompt_length
