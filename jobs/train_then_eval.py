"""Fine-tune a model, then evaluate the tuned model with the main job, in one go.

    python jobs/train_then_eval.py --model tiny-random [--baseline] \
        [--train KEY=VALUE ...] [--grpo [KEY=VALUE ...]] [--eval KEY=VALUE ...] \
        [--out runs/tuned/tiny-random]

Runs, each as its own process and stopping at the first that fails:

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
continues where it stopped. On a Ray cluster, submit this script as a Ray job (``python -m
jobs.finetune``); the steps then join the cluster through ``ray.address=auto`` (pass it in
``--train``, ``--grpo`` and ``--eval``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-random", help="a conf/model entry")
    parser.add_argument("--out", default=None, help="root of this job's outputs (default runs/tuned/MODEL)")
    parser.add_argument("--baseline", action="store_true", help="evaluate the untuned model first")
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for training")
    parser.add_argument("--grpo", nargs="*", default=None, metavar="KEY=VALUE",
                        help="add GRPO from the SFT adapter, with these overrides")
    parser.add_argument("--eval", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for evaluation")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The (name, command) of each step, in order."""
    out = Path(args.out or f"runs/tuned/{args.model}").expanduser().resolve()
    python = [sys.executable, "-m"]
    steps = []
    if args.baseline:
        steps.append(("evaluate the untuned model", [*python, "crossmath.run", f"model={args.model}",
                                                      f"runs_dir={out / 'eval-base'}", *args.eval]))
    steps.append(("train", [*python, "crossmath.train", f"model={args.model}",
                            f"out_dir={out / 'train'}", *args.train]))
    steps.append(("evaluate the tuned model", _evaluation(args, out / "train" / "adapter", "lora", out)))
    if args.grpo is not None:
        steps.append(("grpo", [*python, "crossmath.train", f"model={args.model}", "method=grpo",
                               f"init_adapter={out / 'train' / 'adapter'}", f"out_dir={out / 'grpo'}",
                               *args.grpo]))
        steps.append(("evaluate the grpo model", _evaluation(args, out / "grpo" / "adapter", "grpo", out)))
    return steps


def _evaluation(args: argparse.Namespace, adapter: Path, suffix: str, out: Path) -> list[str]:
    """The main job on the model with ``adapter``, named ``<model>-<suffix>``."""
    return [sys.executable, "-m", "crossmath.run", f"model={args.model}", f"model.adapter={adapter}",
            f"model.name={args.model}-{suffix}", f"runs_dir={out / f'eval-{suffix}'}", *args.eval]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    for name, command in plan(args):
        print(f"== {name}: {' '.join(command)}", flush=True)
        status = subprocess.run(command, env=env).returncode
        if status != 0:
            print(f"== {name} failed with exit status {status}; rerun the same command to resume",
                  file=sys.stderr)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
