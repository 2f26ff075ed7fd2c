"""``python -m crossmath.lint path=FILE.jsonl``: flag records that are not the puzzle they claim.

Prints one line per flagged record (record number, status, reason) and a summary line.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from crossmath.puzzle.consistency import lint_jsonl
from crossmath.runtime.checks import existing_path
from crossmath.runtime.errors import reports_failures


@hydra.main(version_base="1.3", config_path="pkg://crossmath.conf", config_name="lint")
@reports_failures("crossmath.lint")
def main(cfg: DictConfig) -> None:
    results = lint_jsonl(existing_path(cfg.path, "path"))
    flagged = [r for r in results if not r.ok]
    for result in flagged:
        print(result.describe())
    print(f"{len(results)} records: {len(results) - len(flagged)} ok, {len(flagged)} flagged")


if __name__ == "__main__":
    main()
