"""``python -m crossmath.run model=<name>``: evaluate one model across modalities and styles
(with ``transcribe`` among the modalities, the perception probe too), or on a transfer task
(``task=mathverse-vision``, ``task=mmmu-val``).

See ``crossmath.pipeline.evaluation`` for what a run does; ``conf/run.yaml`` for its options.
``-m model=a,b`` gives one MLflow run per model.

Exit status: 0 when every request was answered; ``EXIT_INCOMPLETE`` (3) when some failed (the
results and scores are written all the same, the failures counted as wrong; rerun to retry
them); 2 when the evaluation could not start (tracking store unreachable, results folder of
another evaluation, a model or prompt set that cannot be identified).
"""

from __future__ import annotations

import logging
import os
import sys

from omegaconf import DictConfig

from crossmath.pipeline.evaluation import run_evaluation
from crossmath.pipeline.failures import EXIT_INCOMPLETE
from crossmath.runtime.entry import command
from crossmath.settings.run import RunSettings
from crossmath.summary.score_views import console

# Results folders of the runs of this process that ended with failed requests (a multirun
# runs every job before the process exits with EXIT_INCOMPLETE).
incomplete_runs: list[str] = []


@command("crossmath.run", config_name="run", door=RunSettings.from_config, resumable=True)
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = RunSettings.from_config(cfg)  # the door: checked and read once
    outcome = run_evaluation(settings)
    print(console(outcome.scores, settings.model_name))
    for line in outcome.failures.summary_lines():
        print(line)
    print(f"{outcome.n_requests} requests ({outcome.n_run_now} run now, the rest resumed); "
          f"results in {outcome.out_dir}; MLflow run {outcome.mlflow_run_id} at "
          f"{settings.mlflow['tracking_uri']}")
    if not outcome.complete:
        incomplete_runs.append(str(outcome.out_dir))


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    main()
    if incomplete_runs:
        sys.exit(EXIT_INCOMPLETE)
