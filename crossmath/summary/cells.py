"""How one number is written in a table cell of a report, the same way in every table."""

from __future__ import annotations

from crossmath.metrics.accuracy import MeanStd
from crossmath.metrics.gaps import GapEstimate

MISSING = "–"  # a number the evaluation does not have


def stat_cell(stat: MeanStd | None) -> str:
    """A percentage as ``mean ± std`` with one decimal; ``–`` when undefined."""
    return MISSING if stat is None else format(stat, ".1f")


def gap_cell(estimate: GapEstimate) -> str:
    """A gap in percentage points with its 95% interval: ``+4.2 [+1.0, +7.5]``."""
    return f"{estimate.gap:+.1f} {interval(estimate)}"


def interval(estimate: GapEstimate) -> str:
    return f"[{estimate.ci_low:+.1f}, {estimate.ci_high:+.1f}]"
