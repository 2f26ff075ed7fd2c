"""``python -m jobs.finetune --model M [--baseline] [--grpo ...]``: ``crossmath submit finetune``
(see ``crossmath.submit``)."""

from __future__ import annotations

import sys

from crossmath.orchestration.door import job_entry
from crossmath.submit import finetune

PROG = "python -m jobs.finetune"


def main(argv: list[str] | None = None) -> int:
    return finetune(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(job_entry(PROG, main))
