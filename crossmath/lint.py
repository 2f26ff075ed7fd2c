"""``python -m crossmath.lint path=FILE_OR_FOLDER``: flag records that are not what they claim.

A folder means every ``testset_*.jsonl`` in it and in its style subfolders (the release's
layout). Prints one line per flagged record (file, line, record, status, reasons) and a summary
line; exits 1 when any record is flagged, 0 when none, 2 when the path holds nothing to check (a
missing path, an empty file, a file that is not JSONL at all).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from crossmath.puzzle.consistency import lint_jsonl
from crossmath.runtime.entry import command
from crossmath.settings.lint import LintSettings

EXIT_FLAGGED = 1


@command("crossmath.lint", config_name="lint", door=LintSettings.from_config)
def main(cfg: DictConfig) -> None:
    files = LintSettings.from_config(cfg).files  # the door: every file readable as jsonl
    results = [result for path in files for result in lint_jsonl(path)]
    flagged = [r for r in results if not r.ok]
    for result in flagged:
        print(result.describe())
    print(f"{len(results)} records in {len(files)} file{'s' if len(files) != 1 else ''}: "
          f"{len(results) - len(flagged)} ok, {len(flagged)} flagged")
    if flagged:
        sys.exit(EXIT_FLAGGED)


if __name__ == "__main__":
    main()
