"""``python -m jobs.finetune_story --model M [--tasks ...] [--grpo ...]``: ``crossmath story``
(see ``crossmath.story``)."""

from __future__ import annotations

import sys

from crossmath.orchestration.door import job_entry
from crossmath.story import main as story

PROG = "python -m jobs.finetune_story"


def main(argv: list[str] | None = None) -> int:
    return story(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(job_entry(PROG, main))
