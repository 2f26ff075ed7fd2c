"""Paired difference of two modalities on the same puzzles: estimate, interval and test.

The unit is the puzzle: each side gives one score per puzzle (already averaged over samples
and, when pooling, over styles), and the gap is the mean of the per-puzzle differences. The
interval is a percentile bootstrap that resamples puzzles; the test is a paired sign-flip
permutation test (under "no gap", each puzzle's difference is as likely negative as
positive), exact when there are few puzzles and Monte Carlo otherwise. Both are seeded, so
the same scores and seed give the same numbers. Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Resamples per chunk, so the (chunk x puzzles) index matrix stays a few tens of MB.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class GapEstimate:
    """A paired gap in the units of the scores (percentage points for percent scores)."""

    gap: float
    ci_low: float
    ci_high: float
    p_value: float
    n_puzzles: int
    confidence: float


def paired_gap(
    first: np.ndarray,
    second: np.ndarray,
    *,
    seed: int = 0,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
) -> GapEstimate:
    """Gap ``mean(first - second)`` over puzzles, with its bootstrap interval and p-value.

    ``first[i]`` and ``second[i]`` must score the same puzzle ``i``.
    """
    first = np.asarray(first, dtype=float)
    second = np.asarray(second, dtype=float)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"paired scores need equal 1-d shapes, got {first.shape} and {second.shape}")
    if first.size == 0:
        raise ValueError("a paired gap needs at least one puzzle")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    differences = first - second
    rng = np.random.default_rng(seed)
    low, high = bootstrap_interval(differences, rng, n_resamples, confidence)
    p_value = sign_flip_p_value(differences, rng, n_resamples)
    return GapEstimate(float(differences.mean()), low, high, p_value, differences.size, confidence)


def bootstrap_interval(
    differences: np.ndarray, rng: np.random.Generator, n_resamples: int, confidence: float
) -> tuple[float, float]:
    """Percentile interval of the mean difference over puzzle resamples."""
    n = differences.size
    means = np.concatenate([
        differences[rng.integers(0, n, size=(size, n))].mean(axis=1)
        for size in _chunk_sizes(n_resamples, n)
    ])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def sign_flip_p_value(differences: np.ndarray, rng: np.random.Generator, n_resamples: int) -> float:
    """Two-sided p-value of a zero mean difference under random sign flips.

    With ``2**n <= n_resamples`` every sign pattern is enumerated (exact p-value); otherwise
    ``n_resamples`` random patterns give ``(1 + hits) / (1 + n_resamples)``, which is never 0.
    """
    n = differences.size
    observed = abs(differences.mean())
    # A flipped mean can equal the observed one up to rounding; count those as "as extreme".
    tolerance = 1e-12 * max(1.0, float(np.abs(differences).max()))
    if 2**n <= n_resamples:
        patterns = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        means = ((1 - 2 * patterns) * differences).mean(axis=1)
        return float(np.mean(np.abs(means) >= observed - tolerance))
    hits = 0
    for size in _chunk_sizes(n_resamples, n):
        signs = rng.integers(0, 2, size=(size, n)) * 2 - 1
        hits += int(np.sum(np.abs((signs * differences).mean(axis=1)) >= observed - tolerance))
    return (1 + hits) / (1 + n_resamples)


def _chunk_sizes(total: int, width: int) -> list[int]:
    step = max(1, _CHUNK_CELLS // max(1, width))
    return [min(step, total - start) for start in range(0, total, step)]
