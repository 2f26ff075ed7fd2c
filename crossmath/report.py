"""``python -m crossmath.report``: compare the runs of an MLflow experiment.

Reads the latest ``metrics.json`` of each evaluation (one MLflow run per evaluation, however
often it was resumed) and prints a models × modality table with the gaps, saved as markdown
and PNG in ``out``. An evaluation that finished with failed requests is marked incomplete.
Evaluations of transfer tasks have no modalities to compare and are left out (their
``transfer/<task>/acc`` metrics are in MLflow).
"""

from __future__ import annotations

import json
import os

from omegaconf import DictConfig

from crossmath.metrics.scorecard import Evaluation
from crossmath.runtime.entry import command
from crossmath.runtime.errors import ConfigError
from crossmath.summary.views import compare_runs
from crossmath.tracking import mlflow_store as tracking


@command("crossmath.report", config_name="report")
def main(cfg: DictConfig) -> None:
    evaluations: dict[str, Evaluation] = {}
    for run in tracking.evaluation_runs(cfg.mlflow.tracking_uri, cfg.mlflow.experiment):
        label = run.run_name or run.run_id
        if label in evaluations:
            label = f"{label} ({run.run_id[:8]})"
        if run.incomplete:
            label += " (incomplete)"
        metrics = json.loads(run.metrics_file.read_text(encoding="utf-8"))
        if "groups" not in metrics:  # a transfer task's tallies
            continue
        evaluations[label] = Evaluation.from_dict(metrics)
    if not evaluations:
        raise ConfigError("mlflow.experiment", f"{cfg.mlflow.experiment!r} holds no evaluation "
                                               f"runs at {cfg.mlflow.tracking_uri}")
    comparison = compare_runs(evaluations, cfg.out, metric=cfg.metric, style=cfg.compare_style)
    print(comparison.markdown)
    print(f"saved {comparison.markdown_path} and {comparison.plot_path}")


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run
    main()
