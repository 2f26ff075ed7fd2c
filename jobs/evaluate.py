"""Evaluate one model on the cluster: ``python -m jobs.evaluate [options] model=<name> [overrides]``.

Submits ``python -m crossmath.run`` as a Ray Job with the cluster defaults (render actors on
the CPU workers, one GPU per model replica, outputs in shared storage, MLflow on the cluster's
tracking server), follows its logs and prints where its MLflow run is. Overrides are those of
``python -m crossmath.run``; yours win over the defaults, e.g. ``resources.infer_actors=4``.

    python -m jobs.evaluate model=qwen2.5-vl-3b data=official resources.infer_actors=2
"""

from __future__ import annotations

import argparse
import sys

from jobs.door import JobParser, checked_overrides, job_entry
from jobs.submission import (
    add_cluster_arguments,
    connect,
    pending_note,
    python_module,
    report,
    run_defaults,
    with_defaults,
)

PROG = "python -m jobs.evaluate"


def main(argv: list[str] | None = None) -> int:
    parser = JobParser(prog=PROG, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of crossmath.run")
    args = parser.parse_args(argv)
    overrides = checked_overrides("run", with_defaults(run_defaults(args), args.overrides))
    model = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("model=")), "oracle")

    cluster = connect(args.address, args.connect_timeout_s)
    job = cluster.submit(python_module("crossmath.run", overrides), "evaluate", model)
    if args.no_wait:
        pending_note(cluster, [job])
        return 0
    status = cluster.follow(job.job_id)
    return 0 if report(cluster, job, status, args.mlflow_ui) else 1


if __name__ == "__main__":
    sys.exit(job_entry(PROG, main))
