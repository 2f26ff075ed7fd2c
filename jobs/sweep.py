"""``python -m jobs.sweep --models a,b [overrides]``: ``crossmath submit sweep`` (see
``crossmath.submit``)."""

from __future__ import annotations

import sys

from crossmath.orchestration.door import job_entry
from crossmath.submit import sweep

PROG = "python -m jobs.sweep"


def main(argv: list[str] | None = None) -> int:
    return sweep(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(job_entry(PROG, main))
