"""Where the decode loop keeps keys and values, row by row: a growing cache or a static one.

Both hold one *slot* per decoded row. The loop fills them from the prefill's cache (a slot
names the prompt it continues, so several slots can share one prefilled prompt), drops the
slots of finished rows when fewer slots would do, and asks for room before each step.

- ``GrowingKV``: transformers' ``DynamicCache``, which appends each step's keys (``torch.cat``).
  Slots are exactly the live rows.
- ``StaticKV``: transformers' ``StaticCache``, preallocated and written in place, so that the
  decode step has fixed shapes and can be compiled and captured as a CUDA graph. Shapes come
  from ``size_bucket``: slots and cache length are rounded up to 1, 2, 3, 4, 6, 8, 12, 16, ...
  (at most a third wasted), so a backend compiles one graph per bucket pair, not per batch.
  Moving to another bucket (fewer rows, or a longer cache) copies the live rows' keys into a
  new cache: memory briefly holds both.

Only attention layers are supported by ``StaticKV`` (a model with linear-attention layers,
such as Qwen3.5, decodes with ``GrowingKV``, whose rows move with ``reorder_cache``).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import StaticCache
from transformers.cache_utils import StaticLayer

KV_CACHE_KINDS: tuple[str, ...] = ("dynamic", "static")
MIN_STATIC_LENGTH = 256


def size_bucket(n: int, minimum: int = 1) -> int:
    """The smallest of 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (2^k and 3 x 2^(k-1)) that is at
    least ``max(n, minimum)``."""
    n = max(n, minimum, 1)
    power = 1
    while power < n:
        if power >= 2 and power * 3 // 2 >= n:
            return power * 3 // 2
        power *= 2
    return power


class _SlotStore:
    """What both stores hold: the transformers cache the model reads and writes, and the
    attention mask of every slot (prompt padding hidden, room for new tokens)."""

    def __init__(self, model_config: Any) -> None:
        self.model_config = model_config
        self.cache: Any = None
        self._mask = torch.empty(0, 0, dtype=torch.bool)


class GrowingKV(_SlotStore):
    """A ``DynamicCache`` with one slot per live row; the attention mask grows with it."""

    def slots_for(self, n_rows: int) -> int:
        return n_rows

    def start(self, prefilled: Any, slots: torch.Tensor, prompt_mask: torch.Tensor,
              max_length: int) -> None:
        """Take over ``prefilled`` (one row per prompt), slot ``i`` continuing prompt ``slots[i]``.

        ``prompt_mask`` is the prefill's attention mask; ``max_length`` the most tokens (prompt
        and new) a slot will hold.
        """
        if not torch.equal(slots, torch.arange(len(prompt_mask), device=slots.device)):
            prefilled.reorder_cache(slots)
        self.cache = prefilled
        self._mask = _mask_with_room(prompt_mask[slots], max_length)

    def keep(self, slots: torch.Tensor, length: int) -> None:
        """Keep only these slots, in this order (``length``: tokens cached so far)."""
        self.cache.reorder_cache(slots)
        self._mask = self._mask[slots]

    def make_room(self, length: int) -> None:
        """Nothing to do: the cache grows as it is written."""

    def step_mask(self, length: int) -> torch.Tensor:
        """The attention mask of a step after which the cache holds ``length`` tokens."""
        return self._mask[:, :length]


class StaticKV(_SlotStore):
    """A ``StaticCache`` whose slots and length are bucketed sizes; live rows move between them."""

    def __init__(self, model_config: Any) -> None:
        super().__init__(model_config)
        self._max_length = 0

    def slots_for(self, n_rows: int) -> int:
        return size_bucket(n_rows)

    @property
    def capacity(self) -> int:
        """Tokens each slot can hold before the cache must move to a longer bucket."""
        return self._mask.shape[1]

    def start(self, prefilled: Any, slots: torch.Tensor, prompt_mask: torch.Tensor,
              max_length: int) -> None:
        prompt_length = prompt_mask.shape[1]
        self._max_length = max_length
        capacity = size_bucket(min(max_length, 2 * prompt_length), MIN_STATIC_LENGTH)
        self.cache = self._copy(prefilled, slots, prompt_length, capacity)
        self._mask = _mask_with_room(prompt_mask[slots], capacity)

    def keep(self, slots: torch.Tensor, length: int) -> None:
        self.cache = self._copy(self.cache, slots, length, self.capacity)
        self._mask = self._mask[slots]

    def make_room(self, length: int) -> None:
        """Move to a longer bucket if the next step would write past the end."""
        if length <= self.capacity:
            return
        capacity = size_bucket(min(self._max_length, 2 * length), MIN_STATIC_LENGTH)
        every_slot = torch.arange(self._mask.shape[0], device=self._mask.device)
        self.cache = self._copy(self.cache, every_slot, length - 1, capacity)
        self._mask = _mask_with_room(self._mask, capacity)

    def step_mask(self, length: int) -> torch.Tensor:
        """The whole mask: positions past ``length`` are hidden by causality, and a mask of
        fixed shape keeps the compiled step's shapes fixed."""
        return self._mask

    def _copy(self, source: Any, slots: torch.Tensor, length: int, capacity: int) -> StaticCache:
        """A new static cache holding ``source``'s first ``length`` positions of ``slots``."""
        target = StaticCache(config=self.model_config, max_cache_len=capacity)
        if len(target.layers) != len(source.layers):
            raise ValueError(f"{len(source.layers)} cache layers to copy into {len(target.layers)}")
        for source_layer, layer in zip(source.layers, target.layers):
            if type(layer) is not StaticLayer or not hasattr(source_layer, "keys"):
                raise ValueError(
                    f"kv_cache: static supports models whose layers all use full attention; this "
                    f"one has {type(layer).__name__} layers (use kv_cache: dynamic)"
                )
            index = slots.to(source_layer.keys.device)
            layer.update(source_layer.keys[index, :, :length], source_layer.values[index, :, :length])
        return target


def kv_store_type(kind: str) -> type[GrowingKV] | type[StaticKV]:
    """The store class of one ``kv_cache`` setting (a fresh store per ``decode`` call)."""
    if kind == "dynamic":
        return GrowingKV
    if kind == "static":
        return StaticKV
    raise ValueError(f"kv_cache must be one of {KV_CACHE_KINDS}, got {kind!r}")


def _mask_with_room(mask: torch.Tensor, length: int) -> torch.Tensor:
    """``mask`` (rows x prompt) widened to ``length`` columns, the new ones attended."""
    grown = torch.ones(mask.shape[0], length, dtype=torch.bool, device=mask.device)
    grown[:, :mask.shape[1]] = mask.bool()
    return grown
