"""``crossmath submit evaluate|sweep|finetune [options]``: run commands on a Ray cluster as Ray Jobs.

- ``evaluate [options] model=<name> [overrides]``: ``crossmath.run`` as one job;
- ``sweep --models a,b [overrides]``: one ``crossmath.run`` job per model, side by side;
- ``finetune --model M [--baseline] [--train ...] [--grpo [...]] [--eval ...]``: train, then
  evaluate the tuned model, as one job (the steps of ``orchestration.story_plan``).

Each job runs with the cluster defaults (render actors on the CPU workers, one GPU per model
replica, outputs in shared storage, MLflow on the cluster's tracking server; your overrides
win), its command line checked here first; the command follows its logs and prints where its
MLflow runs are. ``python -m jobs.evaluate``, ``jobs.sweep`` and ``jobs.finetune`` are the same
commands. See docs/cluster.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from crossmath.orchestration.door import (
    JobParser,
    add_stage_overrides,
    checked_overrides,
    job_entry,
)
from crossmath.orchestration.overrides import with_defaults
from crossmath.orchestration.ray_jobs import (
    add_cluster_arguments,
    chained_steps,
    connect,
    pending_note,
    placement_defaults,
    python_module,
    report,
    run_defaults,
)
from crossmath.orchestration.story_plan import TUNED_LAYOUT, Story, plan_story

PROG = "crossmath submit"

EVALUATE_HELP = """Evaluate one model on the cluster: submits ``python -m crossmath.run`` as a Ray
Job with the cluster defaults, follows its logs and prints where its MLflow run is. Overrides
are those of ``crossmath run``; yours win over the defaults, e.g. ``resources.infer_actors=4``.

    crossmath submit evaluate model=qwen2.5-vl-3b data=official resources.infer_actors=2
"""

SWEEP_HELP = """Evaluate several models on the cluster, one Ray Job each, side by side.

    crossmath submit sweep --models qwen2.5-vl-3b,qwen3-vl-8b data=official

Each model gets its own job (``python -m crossmath.run model=<name>`` plus the shared
overrides), so the jobs share the cluster's GPUs, the autoscaler adds nodes for them, and one
failing job leaves the others running. Waits for all of them and prints each one's status and
MLflow run; compare them with ``crossmath report`` or the MLflow UI.
"""

FINETUNE_HELP = """Fine-tune a model on the cluster, then evaluate the tuned model, as one Ray Job.

    crossmath submit finetune --model qwen2.5-vl-3b --baseline \\
        --train train.epochs=1 dataset.n_puzzles=2000 --eval data=official
    crossmath submit finetune --model qwen2.5-vl-3b --grpo grpo.steps=200 --eval data=official

The job runs, one after the other on the head node: (with ``--baseline``) ``python -m
crossmath.run`` on the untuned model, ``python -m crossmath.train`` (LoRA on Ray Train, one GPU
per training worker), ``python -m crossmath.run model.adapter=<the adapter>``; with ``--grpo``,
GRPO from the SFT adapter and an evaluation of its adapter follow (SFT -> GRPO -> evaluation,
the study's two stages), each step joining the cluster and logging to its MLflow server; the
first step that fails ends the job. Everything goes under ``<storage>/tuned/<model>``
(``train``, ``grpo``, ``eval-base``, ``eval-lora``, ``eval-grpo``), which must be a path every
node mounts (cluster.yaml's EFS folder): the training writes checkpoints there and the
inference actors read the adapter from there. Rerunning the same command resumes the training
from its last checkpoint.
"""


def evaluate(argv: Sequence[str] | None = None, prog: str = f"{PROG} evaluate") -> int:
    parser = _parser(prog, EVALUATE_HELP)
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


def sweep(argv: Sequence[str] | None = None, prog: str = f"{PROG} sweep") -> int:
    parser = _parser(prog, SWEEP_HELP)
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


def finetune(argv: Sequence[str] | None = None, prog: str = f"{PROG} finetune") -> int:
    parser = _parser(prog, FINETUNE_HELP)
    parser.add_argument("--model", required=True, help="a conf/model entry that can be trained")
    parser.add_argument("--baseline", action="store_true", help="evaluate the untuned model first")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (one GPU each)")
    add_stage_overrides(parser)
    args = parser.parse_args(argv)
    steps = plan_story(tuned_story(args))
    for step in steps:  # every step's overrides, composed here before the job is submitted
        checked_overrides(step.config_name, step.overrides)

    cluster = connect(args.address, args.connect_timeout_s)
    job = cluster.submit(chained_steps(steps), "finetune", args.model)
    if args.no_wait:
        pending_note(cluster, [job])
        return 0
    status = cluster.follow(job.job_id)
    return 0 if report(cluster, job, status, args.mlflow_ui) else 1


def tuned_story(args: argparse.Namespace) -> Story:
    """What the fine-tuning job runs: SFT (then GRPO) with the training defaults of the
    cluster, each evaluation with its placement defaults, under ``<storage>/tuned/<model>``."""
    training = {
        "ray.address": "auto",
        "scaling.use_gpu": "true" if args.gpus > 0 else "false",
        "scaling.num_workers": str(args.workers),
        "mlflow.tracking_uri": args.mlflow_uri,
    }
    return Story(
        model=args.model, root=f"{args.storage}/tuned/{args.model}",
        evaluate_base=args.baseline, probe=False,
        train=tuple(with_defaults(training, args.train)),
        grpo=None if args.grpo is None else tuple(with_defaults(training, args.grpo)),
        evaluate=tuple(with_defaults(placement_defaults(args), args.eval)),
        layout=TUNED_LAYOUT)


JOBS: dict[str, Callable[..., int]] = {"evaluate": evaluate, "sweep": sweep, "finetune": finetune}


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """``submit <job> [arguments]``: the job's own command line after its name."""
    parser = JobParser(prog=prog, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=list(JOBS), help="what to submit")
    parser.add_argument("arguments", nargs=argparse.REMAINDER,
                        help="the job's options and overrides (see <job> --help)")
    args = parser.parse_args(argv)
    job_prog = f"{prog} {args.job}"  # what its messages start with
    return job_entry(job_prog, lambda: JOBS[args.job](args.arguments, prog=job_prog))


def _parser(prog: str, description: str) -> JobParser:
    parser = JobParser(prog=prog, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_arguments(parser)
    return parser


if __name__ == "__main__":
    sys.exit(job_entry("python -m crossmath.submit", lambda: main(prog="python -m crossmath.submit")))
