"""Fine-tune a model, then evaluate the tuned model with the main job, in one go, here.

    python jobs/train_then_eval.py --model tiny-random [--baseline] \\
        [--train KEY=VALUE ...] [--grpo [KEY=VALUE ...]] [--eval KEY=VALUE ...] \\
        [--out runs/tuned/tiny-random]

Runs, each as its own process and stopping at the first that fails (an evaluation with failed
requests included):

  1. (with ``--baseline``) ``python -m crossmath.run model=M`` on the untuned model;
  2. ``python -m crossmath.train model=M out_dir=OUT/train`` (LoRA SFT);
  3. ``python -m crossmath.run model=M model.adapter=OUT/train/adapter model.name=M-lora``;

and with ``--grpo``, the study's second stage from the SFT adapter:

  4. ``python -m crossmath.train model=M method=grpo init_adapter=OUT/train/adapter
     out_dir=OUT/grpo``;
  5. ``python -m crossmath.run model=M model.adapter=OUT/grpo/adapter model.name=M-grpo``.

Each tuned model is evaluated under its own name (``M-lora``, ``M-grpo``); each evaluation gets
its own folder under ``OUT/eval-base``, ``OUT/eval-lora`` or ``OUT/eval-grpo`` (``runs_dir``),
so retraining and evaluating again adds a folder rather than mixing adapters, and the runs sit
side by side in MLflow. ``--train``, ``--grpo`` and ``--eval`` take Hydra overrides for their
steps (``--train`` ones go to the SFT step, ``--grpo`` ones to the GRPO step, ``--eval`` ones
to every evaluation). Every step resumes, so rerunning the same command after a failure
continues where it stopped. These are the steps that ``crossmath submit finetune`` (``python -m
jobs.finetune``) runs on a cluster, planned by the same planner
(``crossmath.orchestration.story_plan``, its ``TUNED_LAYOUT``); ``crossmath story`` is the
whole story with the probe, the transfer tasks and a comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from crossmath.orchestration.door import add_stage_overrides
from crossmath.orchestration.local_steps import run_steps
from crossmath.orchestration.story_plan import TUNED_LAYOUT, Step, Story, plan_story


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-random", help="a conf/model entry")
    parser.add_argument("--out", default=None, help="root of this job's outputs (default runs/tuned/MODEL)")
    parser.add_argument("--baseline", action="store_true", help="evaluate the untuned model first")
    add_stage_overrides(parser)
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> list[Step]:
    """The steps, in order."""
    root = Path(args.out or f"runs/tuned/{args.model}").expanduser().resolve()
    return plan_story(Story(
        model=args.model, root=str(root), evaluate_base=args.baseline, probe=False,
        train=tuple(args.train), grpo=None if args.grpo is None else tuple(args.grpo),
        evaluate=tuple(args.eval), layout=TUNED_LAYOUT))


def main(argv: Sequence[str] | None = None) -> int:
    return run_steps(plan(parse_args(argv)), keep_incomplete=False).status


if __name__ == "__main__":
    sys.exit(main())
