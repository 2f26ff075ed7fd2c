"""``python -m crossmath.report``: compare the runs of an MLflow experiment.

Reads each finished run's ``metrics.json`` artifact and prints a models × modality table with
the gaps, saved as markdown and PNG in ``out``.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from crossmath.metrics.scorecard import Evaluation
from crossmath.runtime.errors import ConfigError, reports_failures
from crossmath.summary.views import compare_runs
from crossmath.tracking import mlflow_store as tracking


@hydra.main(version_base="1.3", config_path="pkg://crossmath.conf", config_name="report")
@reports_failures("crossmath.report")
def main(cfg: DictConfig) -> None:
    evaluations: dict[str, Evaluation] = {}
    runs = tracking.run_artifact_files(cfg.mlflow.tracking_uri, cfg.mlflow.experiment, "metrics.json")
    for run_id, run_name, metrics in runs:  # training runs have no metrics.json and are left out
        label = run_name or run_id
        if label in evaluations:
            label = f"{label} ({run_id[:8]})"
        evaluations[label] = Evaluation.from_dict(json.loads(metrics.read_text(encoding="utf-8")))
    if not evaluations:
        raise ConfigError("mlflow.experiment", f"{cfg.mlflow.experiment!r} holds no evaluation "
                                               f"runs at {cfg.mlflow.tracking_uri}")
    comparison = compare_runs(evaluations, cfg.out, metric=cfg.metric, style=cfg.compare_style)
    print(comparison.markdown)
    print(f"saved {comparison.markdown_path} and {comparison.plot_path}")


if __name__ == "__main__":
    main()
