"""``python -m crossmath.run model=<name>``: evaluate one model across modalities and styles.

See ``crossmath.pipeline.evaluation`` for what a run does; ``conf/run.yaml`` for its options.
``-m model=a,b`` gives one MLflow run per model.
"""

from __future__ import annotations

import logging
import os

import hydra
from omegaconf import DictConfig

from crossmath.pipeline.evaluation import run_evaluation
from crossmath.runtime.errors import reports_failures
from crossmath.summary.views import console_summary


@hydra.main(version_base="1.3", config_path="pkg://crossmath.conf", config_name="run")
@reports_failures("crossmath.run")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    outcome = run_evaluation(cfg)
    print(console_summary(outcome.evaluation, cfg.model.name))
    print(f"{outcome.n_requests} requests ({outcome.n_run_now} run now, the rest resumed); "
          f"results in {outcome.out_dir}; MLflow run {outcome.mlflow_run_id} at "
          f"{cfg.mlflow.tracking_uri}")


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    main()
