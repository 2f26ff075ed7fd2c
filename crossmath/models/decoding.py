"""The decode loop of the hf backend: one prefill per prompt, then rows decoded step by step.

``Decoder.decode`` takes a left-padded batch of *prompts* (the processor's output) and a list
of *rows* to decode, each naming its prompt, its token cap and, when sampling, its key:

1. **Prefill once per prompt.** The prompts run through the model once (vision tower included),
   with explicit positions (Qwen-VL's multimodal rope via the model's ``get_rope_index``), and
   the cache is then expanded so that every row continues its prompt. The samples of a prompt
   share its prefill instead of recomputing it, as ``generate(num_return_sequences=n)`` does.
2. **Decode.** Each step feeds every live row its last token at its own next position. Logits
   go through the repetition penalty (over the row's own tokens, padding excluded), any extra
   logits processors, and then the row's choice: argmax, or keyed Gumbel-max sampling
   (``crossmath.models.sampling``), whose noise depends only on (key, step, token). A row's
   tokens therefore never depend on which rows share its batch.
3. **Rows leave early.** A row ends at a stop token or at its own cap; when the live rows fit
   in fewer slots (``kv_cache.size_bucket``), the finished ones are dropped from the cache, so
   a short cap or an early answer stops costing compute.

The decode step can run on a static cache and be compiled (``torch.compile`` in mode
``reduce-overhead``: CUDA graphs), once per ``Decoder``. Shapes change only between buckets of
slots and cache length; dynamo's automatic dynamic shapes make those dimensions symbolic at
the first change, so later buckets record a new CUDA graph without compiling again. The first
call at each shape is timed and reported as compile time.

Written against the model's ``forward`` only (no ``generate``), so it behaves the same under
transformers 5.17 and 5.24: the cache keyword (``past_key_values`` or ``cache``) is read from
the signature. A peft model (GRPO's policy) is decoded through its base model: peft has put
the adapter layers in place there, so they act (and ``disable_adapter`` turns them off) as in
the peft model's own forward, and the base model is where the cache keyword and the
multimodal rope are found (through the wrapper, image prompts would silently get text
positions).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from transformers import DynamicCache

from crossmath.models.kv_cache import kv_store_type
from crossmath.models.sampling import SeededSampler
from crossmath.models.sampling_modes import DecodingRule
from crossmath.models.sampling_settings import SamplingSettings

LogitsProcessorFactory = Callable[[], list]

# Room for dynamo's recompiles of the decode step (a new bucket before shapes turn dynamic,
# guards on the cache object); beyond it dynamo would silently fall back to eager.
RECOMPILE_LIMIT = 64


class _RuleDraw:
    """The draw of the decoder's own rule (a row that does not choose its own)."""

    def __repr__(self) -> str:
        return "RULE_DRAW"


RULE_DRAW = _RuleDraw()


@dataclass(frozen=True)
class RowPlan:
    """One sequence to decode: which prompt it continues, at most how many tokens, its key,
    and its draw: ``RULE_DRAW`` (the decoder's rule), argmax (None) or its own sampling (a
    server client's ``temperature``, ``top_p``, ``top_k``)."""

    prompt: int
    cap: int
    key: int = 0
    draw: SamplingSettings | None | _RuleDraw = RULE_DRAW


@dataclass(frozen=True)
class RowOutput:
    tokens: list[int]
    stopped: bool  # ended with a stop token (else cut at its cap)


@dataclass
class DecodeStats:
    """Where one ``decode`` call spent its time."""

    prompts: int = 0
    rows: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    steps: int = 0
    slot_steps: int = 0  # slots computed, summed over steps (live rows plus idle ones)
    compile_s: dict[str, float] = field(default_factory=dict)  # shape -> first-call seconds


class Decoder:
    """Prefill and decode for one model (a transformers model, or a peft model around one);
    holds the compiled step, so build it once per backend."""

    def __init__(self, model: torch.nn.Module, stop_ids: Sequence[int], rule: DecodingRule, *,
                 kv_cache: str = "dynamic", compile: bool = False,
                 logits_processor_factory: LogitsProcessorFactory | None = None) -> None:
        if compile and kv_cache != "static":
            raise ValueError("compile needs kv_cache: static (a growing cache changes shape "
                             "every step)")
        self.model = model = _transformers_model(model)
        self.stop_ids = frozenset(stop_ids)
        self.rule = rule
        self.kv_cache = kv_cache
        self._store_type = kv_store_type(kv_cache)
        self.logits_processor_factory = logits_processor_factory
        self._cache_keyword = _cache_keyword(model)
        self._rope_index = getattr(getattr(model, "model", None), "get_rope_index", None)
        self._rope_arguments = frozenset(inspect.signature(self._rope_index).parameters) \
            if self._rope_index is not None else frozenset()
        self._step = torch.compile(self._forward_step, mode="reduce-overhead") \
            if compile else self._forward_step
        self.compiled = compile
        self._shapes_seen: set[tuple[int, int]] = set()

    @torch.inference_mode()
    def decode(self, inputs: Mapping[str, torch.Tensor], rows: Sequence[RowPlan]
               ) -> tuple[list[RowOutput], DecodeStats]:
        """Decode ``rows`` from the left-padded prompts in ``inputs``; outputs in row order."""
        stats = DecodeStats(prompts=len(inputs["input_ids"]), rows=len(rows))
        device = inputs["input_ids"].device
        store = self._store_type(self.model.config)
        started = time.perf_counter()
        cache, logits, next_position = self._prefill(inputs)
        _synchronize(device)
        stats.prefill_s = time.perf_counter() - started

        started = time.perf_counter()
        prompt_ids, prompt_mask = inputs["input_ids"], inputs["attention_mask"]
        prompt_length = prompt_ids.shape[1]
        longest = max(row.cap for row in rows)
        n_slots = store.slots_for(len(rows))
        sources = _with_fillers(list(range(len(rows))), n_slots)
        slots = torch.tensor([rows[r].prompt for r in sources], device=device)
        store.start(cache, slots, prompt_mask, prompt_length + longest)
        state = _RowsState.start(self, rows, sources, slots, prompt_ids, prompt_mask, longest,
                                 logits, next_position)
        tokens: list[list[int]] = [[] for _ in rows]
        stopped = [False] * len(rows)
        processors = self.logits_processor_factory() if self.logits_processor_factory else []
        for step in range(longest):
            chosen = state.choose(step, processors)
            for slot, token in enumerate(chosen.tolist()):
                row = state.slot_row[slot]
                if row < 0:
                    continue
                tokens[row].append(token)
                if token in self.stop_ids or len(tokens[row]) >= rows[row].cap:
                    stopped[row] = token in self.stop_ids
                    state.slot_row[slot] = -1
            stats.steps, stats.slot_steps = step + 1, stats.slot_steps + len(state.slot_row)
            live = [slot for slot, row in enumerate(state.slot_row) if row >= 0]
            if not live:
                break
            if store.slots_for(len(live)) < len(state.slot_row):
                kept = state.keep(live, store.slots_for(len(live)), store, prompt_length + step)
                chosen = chosen[kept]
            length = prompt_length + step + 1
            store.make_room(length)
            state.logits = self._timed_step(chosen, state.next_position + step, store, length,
                                            stats)
        _synchronize(device)
        stats.decode_s = time.perf_counter() - started
        return [RowOutput(t, s) for t, s in zip(tokens, stopped)], stats

    # ----------------------------------------------------------------------------------------
    def _prefill(self, inputs: Mapping[str, torch.Tensor]
                 ) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """Run the prompts once: their cache (one row per prompt), last logits, and each
        one's next position."""
        positions = self._prompt_positions(inputs)
        cache = DynamicCache(config=self.model.config)
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        output = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                            position_ids=positions, use_cache=True, logits_to_keep=1,
                            **{self._cache_keyword: cache}, **extra)
        real = inputs["attention_mask"].bool()
        flat = positions if positions.dim() == 2 else positions.amax(dim=0)
        next_position = flat.masked_fill(~real, -1).amax(dim=1) + 1
        return cache, output.logits[:, -1], next_position

    def _prompt_positions(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Rope positions of the prompt tokens: the model's multimodal ones when it has images,
        else 0, 1, 2, ... over each row's real tokens (padding at 0)."""
        mask = inputs["attention_mask"]
        if self._rope_index is not None and "image_grid_thw" in inputs:
            arguments = {k: v for k, v in inputs.items() if k in self._rope_arguments}
            positions, _ = self._rope_index(**arguments)
            return positions
        return (mask.long().cumsum(dim=1) - 1).clamp(min=0).masked_fill(mask == 0, 0)

    def _forward_step(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor,
                      cache: Any) -> torch.Tensor:
        output = self.model(input_ids=tokens, position_ids=positions, attention_mask=mask,
                            use_cache=True, **{self._cache_keyword: cache})
        return output.logits[:, -1]

    def _timed_step(self, tokens: torch.Tensor, positions: torch.Tensor, store: Any, length: int,
                    stats: DecodeStats) -> torch.Tensor:
        """One decode step; a compiled step's first call at a new shape counts as compile time."""
        mask = store.step_mask(length)
        if not self.compiled:
            return self._step(tokens[:, None], positions[:, None], mask, store.cache)
        shape = (len(tokens), mask.shape[1])
        first = shape not in self._shapes_seen
        started = time.perf_counter()
        torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are consumed
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            logits = self._step(tokens[:, None], positions[:, None], mask, store.cache)
        if first:
            _synchronize(tokens.device)
            self._shapes_seen.add(shape)
            stats.compile_s[f"{shape[0]}x{shape[1]}"] = round(time.perf_counter() - started, 2)
        return logits


@dataclass
class _RowsState:
    """What the loop keeps per slot, on the device, and the slot -> row map on the host."""

    decoder: Decoder
    slot_row: list[int]  # -1: a finished row or a filler
    sequences: torch.Tensor  # prompt and chosen tokens, for logits processors
    prompt_length: int
    keys: torch.Tensor
    draws: list[SamplingSettings | None]  # each slot's draw (None: argmax)
    seen: torch.Tensor | None  # tokens each row has seen, for the repetition penalty
    logits: torch.Tensor
    next_position: torch.Tensor

    @classmethod
    def start(cls, decoder: Decoder, rows: Sequence[RowPlan], sources: list[int],
              slots: torch.Tensor, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
              longest: int, logits: torch.Tensor, next_position: torch.Tensor) -> "_RowsState":
        device = prompt_ids.device
        prompt_length = prompt_ids.shape[1]
        sequences = torch.zeros(len(slots), prompt_length + longest, dtype=torch.long, device=device)
        sequences[:, :prompt_length] = prompt_ids[slots]
        keys = torch.tensor([rows[r].key for r in sources], dtype=torch.int64, device=device)
        draws = [decoder.rule.sampling if rows[r].draw is RULE_DRAW else rows[r].draw
                 for r in sources]
        seen = None
        if decoder.rule.repetition_penalty != 1.0:
            counts = torch.zeros(len(slots), logits.shape[-1], device=device)
            counts.scatter_add_(1, prompt_ids[slots], prompt_mask[slots].float())
            seen = counts > 0
        slot_row = sources[:len(rows)] + [-1] * (len(sources) - len(rows))
        return cls(decoder, slot_row, sequences, prompt_length, keys, draws, seen, logits[slots],
                   next_position[slots])

    def choose(self, step: int, processors: list) -> torch.Tensor:
        """Each slot's token at ``step``, recorded in ``sequences`` (and ``seen``)."""
        rule = self.decoder.rule
        so_far = self.sequences[:, :self.prompt_length + step]
        scores = self.logits.float()
        if self.seen is not None:
            penalized = torch.where(scores < 0, scores * rule.repetition_penalty,
                                    scores / rule.repetition_penalty)
            scores = torch.where(self.seen, penalized, scores)
        for processor in processors:
            scores = processor(so_far, scores)
        distinct = set(self.draws)
        if len(distinct) == 1:
            chosen = self._draw(distinct.pop(), self.keys, so_far, scores)
        else:  # rows with their own draws (a server's requests): each group draws its way
            chosen = torch.empty(len(self.draws), dtype=torch.long, device=scores.device)
            for draw in distinct:
                rows = torch.tensor([i for i, d in enumerate(self.draws) if d == draw],
                                    device=scores.device)
                chosen[rows] = self._draw(draw, self.keys[rows.to(self.keys.device)],
                                          so_far[rows], scores[rows])
        self.sequences[:, self.prompt_length + step] = chosen
        if self.seen is not None:
            self.seen.scatter_(1, chosen[:, None], True)
        return chosen

    def _draw(self, draw: SamplingSettings | None, keys: torch.Tensor, so_far: torch.Tensor,
              scores: torch.Tensor) -> torch.Tensor:
        if draw is None:
            return scores.argmax(dim=-1)
        return SeededSampler(keys, self.prompt_length, draw).choose(so_far, scores)

    def keep(self, live: list[int], n_slots: int, store: Any, cached_length: int) -> torch.Tensor:
        """Keep the ``live`` slots (padded to ``n_slots`` with idle copies); returns the index
        of the kept slots among the old ones."""
        kept = torch.tensor(_with_fillers(live, n_slots), device=self.sequences.device)
        store.keep(kept, cached_length)
        self.slot_row = [self.slot_row[slot] for slot in live] + [-1] * (n_slots - len(live))
        self.sequences, self.keys = self.sequences[kept], self.keys[kept]
        self.draws = [self.draws[slot] for slot in kept.tolist()]
        self.next_position = self.next_position[kept]
        if self.seen is not None:
            self.seen = self.seen[kept]
        return kept


def _with_fillers(slots: list[int], size: int) -> list[int]:
    """``slots`` padded to ``size`` by repeating its last entry (idle slots of a bucket)."""
    return slots + slots[-1:] * (size - len(slots))


def _transformers_model(model: torch.nn.Module) -> torch.nn.Module:
    """A peft model's base model (its adapter layers in place), or ``model`` itself."""
    base = getattr(model, "get_base_model", None)
    return base() if callable(base) else model


def _cache_keyword(model: torch.nn.Module) -> str:
    """The name ``forward`` takes the cache under: ``cache`` since transformers 5.2x, else
    ``past_key_values``."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
