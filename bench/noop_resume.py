"""How long a resume with nothing to run takes: the README's quick start, run again.

    python bench/noop_resume.py [--folder DIR] [--repeats 3]

Runs ``python -m crossmath.run model=tiny-random`` once in ``DIR`` (a scratch folder by
default; the first run does the work, about a minute on a laptop), then times ``--repeats``
reruns, which have nothing left to ask: no Ray, no model, no MLflow (docs/identity.md). As the
baseline, the same interpreter importing the command and exiting (what any command pays before
it does anything) is timed in the same way; the ratio says how much the resume adds to it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUICK_START = [sys.executable, "-m", "crossmath.run", "model=tiny-random"]
IMPORT_ONLY = [sys.executable, "-c", "import crossmath.run"]


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="crossmath-noop-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"first run (does the work) in {folder}: {timed(QUICK_START, folder):.1f} s")
    resumes = [timed(QUICK_START, folder) for _ in range(args.repeats)]
    imports = [timed(IMPORT_ONLY, folder) for _ in range(args.repeats)]
    resume, floor = statistics.median(resumes), statistics.median(imports)
    print(f"no-op resume: median {resume:.2f} s of {[round(t, 2) for t in resumes]}")
    print(f"baseline (import crossmath.run and exit): median {floor:.2f} s")
    print(f"ratio resume / baseline: {resume / floor:.1f}x; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
