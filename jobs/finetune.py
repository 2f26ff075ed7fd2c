"""Fine-tune a model on the cluster, then evaluate the tuned model, as one Ray Job.

    python -m jobs.finetune --model qwen2.5-vl-3b --baseline \\
        --train train.epochs=1 dataset.n_puzzles=2000 --eval data=official
    python -m jobs.finetune --model qwen2.5-vl-3b --grpo grpo.steps=200 --eval data=official

The job runs ``jobs/train_then_eval.py`` on the head node: ``python -m crossmath.train``
(LoRA on Ray Train, one GPU per training worker) and then ``python -m crossmath.run
model.adapter=<the adapter>`` (and, with ``--baseline``, the untuned model first); with
``--grpo``, GRPO from the SFT adapter and an evaluation of its adapter follow (SFT -> GRPO ->
evaluation, the study's two stages), each step joining the cluster and logging to its MLflow
server. Everything goes under ``<storage>/tuned/<model>``, which must be a path every node
mounts (cluster.yaml's EFS folder): the training writes checkpoints there and the inference
actors read the adapter from there. Rerunning the same command resumes the training from its
last checkpoint.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from jobs.door import JobParser, checked_overrides, job_entry
from jobs.submission import (
    CLUSTER_STORAGE,
    Shell,
    add_cluster_arguments,
    command,
    connect,
    pending_note,
    placement_defaults,
    report,
    with_defaults,
)

SCRIPT = "jobs/train_then_eval.py"
PROG = "python -m jobs.finetune"


def main(argv: list[str] | None = None) -> int:
    parser = JobParser(prog=PROG, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    parser.add_argument("--model", required=True, help="a conf/model entry that can be trained")
    parser.add_argument("--baseline", action="store_true", help="evaluate the untuned model first")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (one GPU each)")
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of crossmath.train")
    parser.add_argument("--grpo", nargs="*", default=None, metavar="KEY=VALUE",
                        help="add GRPO from the SFT adapter (overrides of crossmath.train method=grpo)")
    parser.add_argument("--eval", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of crossmath.run, for every evaluation")
    args = parser.parse_args(argv)
    check_stages(args)

    cluster = connect(args.address, args.connect_timeout_s)
    job = cluster.submit(entrypoint(args, args.grpo), "finetune", args.model)
    if args.no_wait:
        pending_note(cluster, [job])
        return 0
    status = cluster.follow(job.job_id)
    return 0 if report(cluster, job, status, args.mlflow_ui) else 1


def check_stages(args: argparse.Namespace) -> None:
    """Every stage's overrides, composed here before the job is submitted."""
    checked_overrides("train", [f"model={args.model}", *args.train])
    if args.grpo is not None:
        checked_overrides("train", [f"model={args.model}", "method=grpo", *args.grpo])
    checked_overrides("run", [f"model={args.model}", *args.eval])


def entrypoint(args: argparse.Namespace, grpo: list[str] | None = None) -> str:
    """The job's command line: the train-then-evaluate script with cluster defaults; with
    ``grpo`` (overrides, possibly none) the GRPO stage follows the SFT one."""
    training = {
        "ray.address": "auto",
        "scaling.use_gpu": "true" if args.gpus > 0 else "false",
        "scaling.num_workers": str(args.workers),
        "mlflow.tracking_uri": args.mlflow_uri,
    }
    train = with_defaults(training, args.train)
    stages = [] if grpo is None else ["--grpo", *with_defaults(training, grpo)]
    evaluation = with_defaults(placement_defaults(args), args.eval)
    if args.storage == CLUSTER_STORAGE:  # the script needs a plain path: the cluster's shell gives it
        out = Shell('"$CROSSMATH_STORAGE"/tuned/' + shlex.quote(args.model))
    else:
        out = f"{args.storage}/tuned/{args.model}"
    return command("python", SCRIPT, "--model", args.model, "--out", out,
                   *(["--baseline"] if args.baseline else []), "--train", *train, *stages,
                   "--eval", *evaluation)


if __name__ == "__main__":
    sys.exit(job_entry(PROG, main))
