"""Grouped-query attention for padded batched decoding, registered as ``"sdpa_gqa"``.

Qwen-VL models share each key/value head among several query heads (2 KV heads for 16 query
heads in Qwen2.5-VL-3B). transformers' ``sdpa`` path hands grouped heads to PyTorch natively only
when there is no attention mask; a left-padded batch always has one, so it first copies every
key/value head once per query head (``repeat_kv``). In decoding that copy is the whole KV cache,
every layer, every step: at a batch of hundreds of long sequences it dominates the step time and
the memory peak.

For a single query token (the decode step) this function computes the same attention with the
query heads folded into groups, so the cache is read once and never copied: two batched matmuls
and a softmax in float32. Longer queries (prefill, the vision tower) go to transformers' own
``sdpa`` function unchanged. Masks are built exactly as for ``sdpa``.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from crossmath.models.config import SDPA_GQA  # the name configs give it (light: no torch)

__all__ = ["SDPA_GQA", "register_sdpa_gqa", "sdpa_gqa_attention_forward"]


def sdpa_gqa_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention in transformers' calling convention: ``query`` is (batch, heads, q_len, dim)."""
    batch, n_heads, q_len, head_dim = query.shape
    n_kv_heads = key.shape[1]
    if q_len != 1 or n_kv_heads == n_heads or (dropout and module.training):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = scaling if scaling is not None else head_dim**-0.5
    grouped = query.reshape(batch, n_kv_heads, n_heads // n_kv_heads, head_dim)
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scale  # (b, kv, group, len)
    if attention_mask is not None:
        mask = attention_mask[..., -key.shape[2]:].reshape(batch, 1, 1, -1)
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1).to(value.dtype)
    output = torch.matmul(weights, value)  # (b, kv, group, dim)
    return output.reshape(batch, n_heads, 1, head_dim).transpose(1, 2), None


def register_sdpa_gqa() -> str:
    """Make ``attn_implementation="sdpa_gqa"`` loadable; idempotent. Returns the name."""
    AttentionInterface.register(SDPA_GQA, sdpa_gqa_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(SDPA_GQA, sdpa_mask)
    return SDPA_GQA
