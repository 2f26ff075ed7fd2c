"""``python -m crossmath.report``: compare the runs of an MLflow experiment.

First marks the experiment's stale runs: RUNNING, with no heartbeat for
``stale_after_minutes`` (their command is gone: killed, or its machine lost), as KILLED with
an ``end_cause`` tag (``tracking.liveness``); ``stale_after_minutes=null`` leaves them be.
Then reads the latest ``metrics.json`` of each evaluation (one MLflow run per evaluation,
however often it was resumed) and prints a models × modality table with the gaps, saved as
markdown and PNG in ``out``. Each evaluation is labelled by what was evaluated (model,
adapter, backend); one that finished with failed requests is marked incomplete; on official
records that lint flags, the oracle's ceiling is shown beside.
Evaluations of transfer tasks have no modalities to compare and are left out (their
``transfer/<task>/<scoring>/acc`` metrics are in MLflow).
"""

from __future__ import annotations

import json
import os

from omegaconf import DictConfig

from crossmath.core.errors import ConfigError
from crossmath.metrics.scorecard import Evaluation
from crossmath.puzzle.consistency import Consistency
from crossmath.runtime.entry import command
from crossmath.settings.report import ReportSettings
from crossmath.summary.run_labels import evaluation_labels
from crossmath.summary.views import compare_runs
from crossmath.tracking import mlflow_store as tracking
from crossmath.tracking.liveness import mark_stale_runs


@command("crossmath.report", config_name="report", door=ReportSettings.from_config)
def main(cfg: DictConfig) -> None:
    settings = ReportSettings.from_config(cfg)  # the door: before the store is opened
    uri, experiment = settings.tracking_uri, settings.experiment
    try:
        if settings.stale_after_minutes is not None:
            for run in mark_stale_runs(uri, experiment, settings.stale_after_minutes * 60):
                print(f"marked run {run.run_name} ({run.run_id}) KILLED: RUNNING with no "
                      f"heartbeat for over {settings.stale_after_minutes} minutes")
        runs = tracking.evaluation_runs(uri, experiment)
    except tracking.UnknownExperiment as error:
        raise ConfigError("mlflow.experiment", str(error)) from None
    compared = []
    for run in runs:
        metrics = json.loads(run.metrics_file.read_text(encoding="utf-8"))
        if "groups" in metrics:  # a transfer task's tallies have no modalities to compare
            compared.append((run, metrics))
    if not compared:
        raise ConfigError("mlflow.experiment", f"{experiment!r} holds no evaluation runs at {uri}")
    labels = evaluation_labels([(run.params, run.run_name or run.run_id) for run, _ in compared])
    evaluations: dict[str, Evaluation] = {}
    ceilings: dict[str, float] = {}
    for label, (run, metrics) in zip(labels, compared):
        label += " (incomplete)" if run.incomplete else ""
        evaluations[label] = Evaluation.from_dict(metrics)
        if "consistency" in metrics:
            ceilings[label] = Consistency.from_dict(metrics["consistency"]).oracle_ceiling
    comparison = compare_runs(evaluations, settings.out, metric=settings.metric,
                              style=settings.compare_style, ceilings=ceilings)
    print(comparison.markdown)
    print(f"saved {comparison.markdown_path} and {comparison.plot_path}")


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run
    main()
