"""Rows of the example table to collated batches, prepared ahead on threads."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import pyarrow as pa
import torch

from crossmath.finetuning.collate import EXAMPLE_COLUMNS, ExampleEncoder, collate


class BatchMaker:
    """Rows of the example table to collated batches, optionally prepared ahead on threads.

    Image decoding and tokenisation run on ``threads`` background threads (the processor and
    tokenizer release the GIL for most of their work), ``lookahead`` batches ahead of the step.
    """

    def __init__(self, table: pa.Table, encoder: ExampleEncoder, pad_token_id: int,
                 threads: int, pin_memory: bool = False) -> None:
        self.table = table.select(list(EXAMPLE_COLUMNS))
        self.encoder = encoder
        self.pad_token_id = pad_token_id
        self.pin_memory = pin_memory  # page-locked, so the copy to the GPU overlaps compute
        self.pool = ThreadPoolExecutor(threads) if threads > 0 else None

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = self.table.take(pa.array(indices, type=pa.int64())).to_pylist()
        batch = collate([self.encoder.encode(row) for row in rows], self.pad_token_id)
        return {k: v.pin_memory() for k, v in batch.items()} if self.pin_memory else batch

    def stream(self, plan: Iterator[Sequence[int]], lookahead: int = 4) -> Iterator[dict[str, torch.Tensor]]:
        if self.pool is None:
            yield from (self.batch(indices) for indices in plan)
            return
        pending: deque = deque()
        for indices in plan:
            pending.append(self.pool.submit(self.batch, indices))
            if len(pending) > lookahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
