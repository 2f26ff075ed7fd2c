"""``python -m jobs.evaluate [options] model=<name> [overrides]``: ``crossmath submit evaluate``
(see ``crossmath.submit``)."""

from __future__ import annotations

import sys

from crossmath.orchestration.door import job_entry
from crossmath.submit import evaluate

PROG = "python -m jobs.evaluate"


def main(argv: list[str] | None = None) -> int:
    return evaluate(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(job_entry(PROG, main))
