"""``python -m crossmath.train model=<name> [method=sft|grpo]``: LoRA SFT or GRPO on generated
puzzles, on Ray Train.

See ``crossmath.finetuning.job`` for what a run does and docs/training.md for the options.
"""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig

from crossmath.runtime.entry import command
from crossmath.runtime.ray_cluster import join_cluster
from crossmath.settings.train import TrainJobSettings


@command("crossmath.train", config_name="train", door=TrainJobSettings.from_config,
         resumable=True)
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = TrainJobSettings.from_config(cfg)  # the door: checked and read once
    join_cluster(settings.ray)  # an unreachable cluster stops here, before anything is written
    # Imported here, past the door: the job loads torch, transformers, peft, MLflow and Ray Train
    # (seconds of CPU), which a wrong option, ``crossmath check train`` and ``--help`` never need.
    from crossmath.finetuning.job import train

    outcome = train(settings)
    summary = outcome.summary
    if settings.method == "grpo":
        result = f"final mean reward {summary.get('final_reward_mean')}"
    else:
        result = (f"final train loss {summary.get('final_train_loss')}, "
                  f"validation loss {summary.get('val_loss')}")
    started = start_text(summary, settings.config.get("init_adapter"))  # as the user gave it
    print(f"trained {summary.get('final_step')} {settings.method} steps ({started}); {result}")
    print(f"adapter: {outcome.adapter}\nMLflow run {outcome.run_id} at "
          f"{settings.mlflow['tracking_uri']}")
    print(f"evaluate: python -m crossmath.run model={settings.model_name} "
          f"model.adapter={outcome.adapter}")


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
