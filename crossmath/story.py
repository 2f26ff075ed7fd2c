"""The paper's fine-tuning story in one command: evaluate, fine-tune, evaluate again, compare.

    python -m jobs.finetune_story --model tiny-random \\
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
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from crossmath.pipeline.evaluation import plan_evaluation
from crossmath.pipeline.puzzle_questions import PuzzleScores
from crossmath.pipeline.shards import read_text
from crossmath.pipeline.task_questions import TransferScores
from crossmath.summary.stages import StageComparison, StageResults, compare_stages
from crossmath.tracking import mlflow_store as tracking
from jobs.door import JobParser, checked_overrides, job_entry
from jobs.submission import with_defaults

PROBE_MODALITIES = "[text,image,hybrid,transcribe]"
CROSSMATH = "crossmath"
EXIT_INCOMPLETE = 3  # crossmath.run: finished, some requests failed


@dataclass(frozen=True)
class Step:
    """One command of the story; an evaluation names its stage and task."""

    name: str
    command: list[str]
    stage: str | None = None
    task: str | None = None
    overrides: tuple[str, ...] = ()  # an evaluation's crossmath.run overrides


PROG = "python -m jobs.finetune_story"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = JobParser(prog=PROG, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-random", help="a conf/model entry")
    parser.add_argument("--out", default=None,
                        help="root of the outputs (default runs/story/MODEL)")
    parser.add_argument("--tasks", nargs="*", default=[], metavar="TASK[=PATH]",
                        help="transfer tasks to evaluate, each with its local copy (no path: "
                             "fetched from the Hugging Face Hub)")
    parser.add_argument("--no-probe", action="store_true",
                        help="CrossMath without the perception probe")
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of the SFT step (crossmath.train)")
    parser.add_argument("--grpo", nargs="*", default=None, metavar="KEY=VALUE",
                        help="add GRPO from the SFT adapter, with these overrides")
    parser.add_argument("--eval", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of every evaluation (crossmath.run)")
    return parser.parse_args(argv)


def output_root(args: argparse.Namespace) -> Path:
    return Path(args.out or f"runs/story/{args.model}").expanduser().resolve()


def plan(args: argparse.Namespace) -> list[Step]:
    """The steps of the story, in order."""
    out = output_root(args)
    python = [sys.executable, "-m"]
    steps = evaluations(args, "base", None)
    steps.append(Step("fine-tune (SFT)", [*python, "crossmath.train", f"model={args.model}",
                                           f"out_dir={out / 'sft'}", *args.train]))
    steps += evaluations(args, "sft", out / "sft" / "adapter")
    if args.grpo is not None:
        steps.append(Step("fine-tune (GRPO)", [
            *python, "crossmath.train", f"model={args.model}", "method=grpo",
            f"init_adapter={out / 'sft' / 'adapter'}", f"out_dir={out / 'grpo'}", *args.grpo]))
        steps += evaluations(args, "grpo", out / "grpo" / "adapter")
    return steps


def evaluations(args: argparse.Namespace, stage: str, adapter: Path | None) -> list[Step]:
    """CrossMath and each transfer task, on the model of ``stage`` (``adapter`` None: base)."""
    tuned = [] if adapter is None else [f"model.adapter={adapter}",
                                        f"model.name={args.model}-{stage}"]
    common = [f"model={args.model}", *tuned, f"runs_dir={output_root(args) / 'eval' / stage}"]
    kinds = [(CROSSMATH, {} if args.no_probe else {"modalities": PROBE_MODALITIES})]
    for spec in args.tasks:
        task, _, path = spec.partition("=")
        kinds.append((task, {"task": task, **({"task.path": path} if path else {})}))
    steps = []
    for task, defaults in kinds:
        overrides = with_defaults(defaults, [*common, *args.eval])
        steps.append(Step(f"evaluate {stage} on {task}",
                          [sys.executable, "-m", "crossmath.run", *overrides],
                          stage=stage, task=task, overrides=tuple(overrides)))
    return steps


def run_steps(steps: list[Step], env: dict[str, str]) -> tuple[int, set[str]]:
    """Run the steps in order; the exit status (0, or the first failure's) and the names of
    the evaluations that finished incomplete."""
    incomplete = set()
    for step in steps:
        print(f"== {step.name}: {' '.join(step.command)}", flush=True)
        status = subprocess.run(step.command, env=env).returncode
        if status == EXIT_INCOMPLETE and step.stage is not None:
            incomplete.add(step.name)
            continue
        if status != 0:
            print(f"== {step.name} failed with exit status {status}; rerun the same command to "
                  "resume", file=sys.stderr)
            return status, incomplete
    return 0, incomplete


def stage_results(steps: list[Step], incomplete: set[str]) -> tuple[list[StageResults], DictConfig]:
    """Every evaluation's scores read back, gathered by stage; and the base model's first
    evaluation config (its MLflow settings are the story's)."""
    stages: dict[str, dict] = {}
    configs = []
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        for step in (s for s in steps if s.stage is not None):
            cfg = compose("run", overrides=list(step.overrides))
            configs.append(cfg)
            folder = plan_evaluation(cfg).out_dir  # the folder this very command wrote
            text = read_text(f"{folder}/metrics.json")
            if text is None:
                raise FileNotFoundError(f"{step.name}: no metrics.json in {folder}")
            scores = json.loads(text)
            found = stages.setdefault(step.stage, {"model": cfg.model.name, "transfer": {},
                                                   "incomplete": []})
            if step.task == CROSSMATH:
                puzzles = PuzzleScores.from_dict(scores)
                found["scorecard"], found["probe"] = puzzles.evaluation, puzzles.probe
            else:
                found["transfer"][step.task] = TransferScores.from_dict(scores).summary
            if step.name in incomplete:
                found["incomplete"].append(step.task)
    results = [StageResults(stage, s["model"], s.get("scorecard"), s.get("probe"), s["transfer"],
                            tuple(s["incomplete"])) for stage, s in stages.items()]
    return results, configs[0]


def publish(comparison: StageComparison, out: Path, cfg: DictConfig, model: str) -> str:
    """``comparison.md`` and ``comparison.json`` in ``out``, and an MLflow run of them in the
    evaluations' experiment; returns the run id."""
    out.mkdir(parents=True, exist_ok=True)
    markdown, summary = out / "comparison.md", out / "comparison.json"
    markdown.write_text(comparison.markdown(), encoding="utf-8")
    summary.write_text(json.dumps(comparison.to_dict(), indent=1), encoding="utf-8")
    uri = cfg.mlflow.tracking_uri
    run_id = tracking.open_run(
        tracking_uri=uri, experiment=cfg.mlflow.experiment, run_name=f"{model}/finetune-story",
        params={"stages": [stage.stage for stage in comparison.stages], "out": str(out)},
        tags={"kind": "comparison", "model": model})
    tracking.log_step_metrics(uri, run_id, comparison.flat_metrics(), step=0)
    tracking.close_run(uri, run_id, artifacts=[markdown, summary])
    return run_id


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    steps = plan(args)
    for step in steps:  # every step's overrides, before the first one runs
        checked_overrides("run" if step.stage is not None else "train", step.command[3:])
    status, incomplete = run_steps(steps, env)
    if status != 0:
        return status
    results, cfg = stage_results(steps, incomplete)
    comparison = compare_stages(results)
    out = output_root(args)
    run_id = publish(comparison, out, cfg, args.model)
    print(comparison.markdown())
    print(f"comparison in {out / 'comparison.md'} and {out / 'comparison.json'}; MLflow run "
          f"{run_id} at {cfg.mlflow.tracking_uri}")
    return EXIT_INCOMPLETE if incomplete else 0


if __name__ == "__main__":
    sys.exit(job_entry(PROG, main))
