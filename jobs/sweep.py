"""Evaluate several models on the cluster, one Ray Job each, side by side.

    python -m jobs.sweep --models qwen2.5-vl-3b,qwen3-vl-8b data=official

Each model gets its own job (``python -m crossmath.run model=<name>`` plus the shared
overrides), so the jobs share the cluster's GPUs, the autoscaler adds nodes for them, and one
failing job leaves the others running. Waits for all of them and prints each one's status and
MLflow run; compare them with ``python -m crossmath.report`` or the MLflow UI.
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

PROG = "python -m jobs.sweep"


def main(argv: list[str] | None = None) -> int:
    parser = JobParser(prog=PROG, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    parser.add_argument("--models", required=True, help="comma-separated model config names")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of crossmath.run, for every model")
    args = parser.parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    if any(o.split("=", 1)[0] == "model" for o in args.overrides):
        parser.error("give the models with --models, not as a model= override")

    commands = {model: checked_overrides("run", with_defaults(
        run_defaults(args), [f"model={model}", *args.overrides])) for model in models}
    cluster = connect(args.address, args.connect_timeout_s)
    jobs = [cluster.submit(python_module("crossmath.run", overrides), "evaluate", model)
            for model, overrides in commands.items()]
    if args.no_wait:
        pending_note(cluster, jobs)
        return 0
    succeeded = [report(cluster, job, cluster.wait(job.job_id), args.mlflow_ui) for job in jobs]
    print("compare them: python -m crossmath.report mlflow.tracking_uri=<the tracking server, "
          "e.g. http://127.0.0.1:5000 forwarded from the head>")
    return 0 if all(succeeded) else 1


if __name__ == "__main__":
    sys.exit(job_entry(PROG, main))
