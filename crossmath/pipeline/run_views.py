"""How an evaluation's MLflow run reads in the UI (``docs/tracking.md``).

- a name a person can scan: ``model/data/modalities/id`` (``tracking.run_labels``);
- a description (``mlflow.note.content``): what was run and, once scored, the headline numbers;
- its data as a dataset input (context ``evaluation``): the runs table's Dataset column;
- the headline metrics (``summary.headline``) beside the detailed ones;
- every prediction as a browsable table (``prediction_table``, ``tracking.evaluation_table``).
"""

from __future__ import annotations

from typing import Any, Mapping

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from crossmath.pipeline.failures import FailureReport
from crossmath.pipeline.prediction_table import COLUMNS
from crossmath.pipeline.questions import Questions, Scores
from crossmath.tracking import datasets, evaluation_table
from crossmath.tracking.run_labels import command_line, evaluation_note, model_label, run_name

EVALUATION_CONTEXT = "evaluation"


def evaluation_model_label(model_config: Mapping[str, Any],
                           backend_settings: Mapping[str, Any]) -> str:
    """The model's name, with its adapter's content fingerprint when it loads one."""
    adapter = backend_settings.get("adapter")
    fingerprint = adapter.get("content") if isinstance(adapter, Mapping) else None
    return model_label(str(model_config.get("name")), fingerprint)


def evaluation_run_name(model: str, questions: Questions, evaluation_id: str) -> str:
    return run_name([model, *questions.label_parts()], evaluation_id)


def opening_tags(model: str, questions: Questions) -> dict[str, str]:
    """The tags a run gets when it opens, before anything is scored."""
    return {MLFLOW_RUN_NOTE: evaluation_note(model=model, asked=questions.describe(),
                                             command=command_line())}


def log_opening(tracking_uri: str, run_id: str, questions: Questions) -> None:
    """What the run shows from its start: its data."""
    datasets.log_dataset(tracking_uri, run_id, questions.dataset(), EVALUATION_CONTEXT)


def log_results(tracking_uri: str, run_id: str, *, model: str, questions: Questions,
                scores: Scores, predictions, failures: FailureReport, out_dir: str,
                model_name: str, table_images: bool = True) -> dict[str, str]:
    """The evaluation table into the run; returns the tags that describe the scored run
    (its description with the headline numbers)."""
    table = questions.prediction_table(predictions, with_images=table_images)
    evaluation_table.log_evaluation_table(tracking_uri, run_id, table.rows, table.images,
                                          columns=COLUMNS)
    note = evaluation_note(model=model, asked=questions.describe(), command=command_line(),
                           n_requests=failures.n_requests, n_failed=failures.n_failed,
                           headline=scores.headline(model_name), out_dir=out_dir)
    return {MLFLOW_RUN_NOTE: note}
