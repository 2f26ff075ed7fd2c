"""``python -m crossmath.train model=<name> [method=sft|grpo]``: LoRA SFT or GRPO on generated
puzzles, on Ray Train.

See ``crossmath.finetuning.job`` for what a run does and docs/training.md for the options.
"""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig

from crossmath.finetuning.job import train
from crossmath.runtime.entry import command
from crossmath.runtime.ray_cluster import join_cluster
from crossmath.settings.train import train_options


@command("crossmath.train", config_name="train", door=train_options, resumable=True)
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = train_options(cfg)  # the door: checked and resolved once
    join_cluster(options["ray"])  # an unreachable cluster stops here, before anything is written
    outcome = train(options)
    summary = outcome.summary
    if cfg.method == "grpo":
        result = f"final mean reward {summary.get('final_reward_mean')}"
    else:
        result = (f"final train loss {summary.get('final_train_loss')}, "
                  f"validation loss {summary.get('val_loss')}")
    print(f"trained {summary.get('final_step')} {cfg.method} steps ({start_text(summary, cfg.get('init_adapter'))}); {result}")
    print(f"adapter: {outcome.adapter}\nMLflow run {outcome.run_id} at {cfg.mlflow.tracking_uri}")
    print(f"evaluate: python -m crossmath.run model={cfg.model.name} model.adapter={outcome.adapter}")


def start_text(summary: dict, init_adapter: str | None = None) -> str:
    """How the run started: resumed from a checkpoint, from ``init_adapter``, or fresh adapters."""
    resumed = summary.get("resumed_from_step", -1)  # -1: a fresh start (Ray keeps numbers only)
    if resumed not in (None, -1):
        return f"resumed from step {resumed}"
    if init_adapter:
        return f"from the adapter {init_adapter}"
    return "from fresh adapters"


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    main()
