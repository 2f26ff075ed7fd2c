"""``python -m crossmath.lint path=FILE_OR_FOLDER``: flag records that are not what they claim.

A folder means every ``testset_*.jsonl`` in it and in its style subfolders (the release's
layout). Prints one line per flagged record (file, line, record, status, reasons) and a summary
line; exits 1 when any record is flagged, 0 when none, 2 when the path holds nothing to check.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from crossmath.puzzle.consistency import LintPathError, lint_jsonl, release_jsonl_files
from crossmath.runtime.errors import ConfigError, reports_failures

EXIT_FLAGGED = 1


@hydra.main(version_base="1.3", config_path="pkg://crossmath.conf", config_name="lint")
@reports_failures("crossmath.lint")
def main(cfg: DictConfig) -> None:
    try:
        files = release_jsonl_files(cfg.path)
    except LintPathError as error:
        raise ConfigError("path", str(error)) from None
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
