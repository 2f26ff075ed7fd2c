"""The paper's fine-tuning story in one command: evaluate, fine-tune, evaluate again, compare.

    crossmath story --model tiny-random \\
        [--tasks mathverse-vision=/data/MathVerse mmmu-val=/data/MMMU] \\
        [--train KEY=VALUE ...] [--grpo [KEY=VALUE ...]] [--eval KEY=VALUE ...] \\
        [--no-probe] [--out runs/story/tiny-random]

Runs, each as its own process and stopping at the first that fails:

  1. the base model on CrossMath (with the perception probe: ``transcribe`` among the
     modalities) and on each transfer task (``python -m crossmath.run task=...``);
  2. LoRA SFT (``python -m crossmath.train``), the adapter in ``OUT/sft/adapter``;
  3. the SFT adapter on the same evaluations, as ``M-sft``;
  4. with ``--grpo``: GRPO from the SFT adapter (``crossmath.train method=grpo``), then its
     adapter on the same evaluations, as ``M-grpo``;
  5. one comparison (``crossmath.summary.stages``): CrossMath accuracy and gaps, the probe's
     reading and the split of T−I, each task's accuracy, every change from the base model;
     written to ``OUT/comparison.md`` and ``OUT/comparison.json`` and logged as an MLflow run
     (tag ``kind=comparison``) in the evaluations' experiment.

Evaluations go under ``OUT/eval/<stage>`` (``runs_dir``: one folder per evaluation), and the
results of each are found by planning the same command here (``plan_evaluation``: no model
loads), so a changed adapter or option is a new folder, never a mix. An evaluation that ends
with failed requests (exit 3) is kept and marked incomplete in the comparison. Every step
resumes: rerunning the same command after a failure continues where it stopped. ``--eval``
overrides go to every evaluation (``data.n=...``, ``samples=...``, ``ray.address=auto``),
``--train`` to SFT and ``--grpo`` to GRPO. On a Ray cluster, run it on the head node (or as a
Ray Job) with ``ray.address=auto`` in each of them and ``--out`` on storage every node mounts.
The steps are planned by ``crossmath.orchestration.story_plan``, which plans the cluster's
fine-tuning job too; ``python -m jobs.finetune_story`` is the same command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_module

from crossmath.orchestration.door import (
    JobParser,
    add_stage_overrides,
    checked_overrides,
    job_entry,
)
from crossmath.orchestration.local_steps import run_steps
from crossmath.orchestration.story_plan import Step, Story, plan_story
from crossmath.orchestration.story_results import Evaluated, publish, stage_results
from crossmath.pipeline.evaluation import plan_evaluation
from crossmath.pipeline.failures import EXIT_INCOMPLETE
from crossmath.summary.stages import compare_stages

PROG = "crossmath story"


def parse_args(argv: Sequence[str] | None = None, prog: str = PROG) -> argparse.Namespace:
    parser = JobParser(prog=prog, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-random", help="a conf/model entry")
    parser.add_argument("--out", default=None,
                        help="root of the outputs (default runs/story/MODEL)")
    parser.add_argument("--tasks", nargs="*", default=[], metavar="TASK[=PATH]",
                        help="transfer tasks to evaluate, each with its local copy (no path: "
                             "fetched from the Hugging Face Hub)")
    parser.add_argument("--no-probe", action="store_true",
                        help="CrossMath without the perception probe")
    add_stage_overrides(parser)
    return parser.parse_args(argv)


def output_root(args: argparse.Namespace) -> Path:
    return Path(args.out or f"runs/story/{args.model}").expanduser().resolve()


def story(args: argparse.Namespace) -> Story:
    """What the command line asks for: every stage evaluated on CrossMath (with the probe
    unless ``--no-probe``) and on each task, under ``output_root``."""
    return Story(model=args.model, root=str(output_root(args)), probe=not args.no_probe,
                 tasks=tuple(args.tasks), train=tuple(args.train),
                 grpo=None if args.grpo is None else tuple(args.grpo),
                 evaluate=tuple(args.eval))


def evaluated(steps: Sequence[Step]) -> tuple[list[Evaluated], tuple[str, str]]:
    """Where each evaluation step wrote, found by planning its command here (no model loads);
    and the MLflow tracking URI and experiment of the first one (the story's)."""
    found, tracking = [], None
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        for step in (s for s in steps if s.stage is not None):
            cfg = compose("run", overrides=list(step.overrides))
            tracking = tracking or (cfg.mlflow.tracking_uri, cfg.mlflow.experiment)
            found.append(Evaluated(step, str(plan_evaluation(cfg).out_dir), cfg.model.name))
    return found, tracking


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    steps = plan_story(story(args))
    for step in steps:  # every step's overrides, before the first one runs
        checked_overrides(step.config_name, step.overrides)
    outcome = run_steps(steps)
    if outcome.status != 0:
        return outcome.status
    evaluations, (tracking_uri, experiment) = evaluated(steps)
    comparison = compare_stages(stage_results(evaluations, outcome.incomplete))
    out = output_root(args)
    run_id = publish(comparison, out, tracking_uri=tracking_uri, experiment=experiment,
                     model=args.model)
    print(comparison.markdown())
    print(f"comparison in {out / 'comparison.md'} and {out / 'comparison.json'}; MLflow run "
          f"{run_id} at {tracking_uri}")
    return EXIT_INCOMPLETE if outcome.incomplete else 0


if __name__ == "__main__":
    sys.exit(job_entry("python -m crossmath.story", lambda: main(prog="python -m crossmath.story")))
