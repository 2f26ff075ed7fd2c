"""The key of one sampled sequence: the seed of its randomness, from its identity alone.

A sampled answer's randomness belongs to its request (the run's seed and the request's id,
which includes its sample index), never to the batch it is decoded in. The hf backend draws
its tokens from the key (``sampling``); the OpenAI client and the vLLM backend send it as the
request's seed. Plain Python: clients import it without torch.
"""

from __future__ import annotations

import hashlib


def sequence_key(seed: int, identity: str) -> int:
    """The key of one sampled sequence: a hash of the run's seed and the request's identity
    (which includes its sample index), as a non-negative int64."""
    digest = hashlib.sha256(f"{seed}\x00{identity}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1
