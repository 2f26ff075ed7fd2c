"""An evaluation's MLflow run, opened when the evaluation first needs it, and how it reads in
the UI (``docs/tracking.md``).

The run is opened (or reopened) before any request is asked, which is also the check that the
tracking store answers, or, when nothing is left to ask, before results are written. A resumed
evaluation whose results are already logged (``refresh``) never opens it, and never imports
MLflow: that is most of the time a no-op resume would otherwise take.

While it is open the run shows

- a name a person can scan: ``model/data/modalities/id`` (``tracking.run_labels``);
- a description (``mlflow.note.content``): what was run and, once scored, the headline numbers;
- its data as a dataset input (context ``evaluation``): the runs table's Dataset column;
- a heartbeat while the work goes on (``tracking.liveness``: a run left RUNNING without one
  is marked KILLED by ``crossmath.report``);
- once scored, the headline metrics (``summary.headline``) beside the detailed ones, and every
  prediction as a browsable table (``tasks.prediction_table``, ``tracking.evaluation_table``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa

from crossmath.pipeline.failures import FailureReport
from crossmath.pipeline.results_folder import SHORT_ID, Manifest, record_mlflow_run
from crossmath.pipeline.shards import PredictionStore
from crossmath.summary.score_views import headline as headline_of
from crossmath.tasks.prediction_table import COLUMNS
from crossmath.tasks.questions import Questions, Scores
from crossmath.tracking.run_labels import (
    RUN_NOTE_TAG,
    command_line,
    evaluation_note,
    model_label,
    run_name,
)

log = logging.getLogger(__name__)

EVALUATION_CONTEXT = "evaluation"


def evaluation_model_label(model_config: Mapping[str, Any],
                           backend_settings: Mapping[str, Any]) -> str:
    """The model's name, with its adapter's content fingerprint when it loads one."""
    adapter = backend_settings.get("adapter")
    fingerprint = adapter.get("content") if isinstance(adapter, Mapping) else None
    return model_label(str(model_config.get("name")), fingerprint)


def evaluation_run_name(model: str, questions: Questions, evaluation_id: str) -> str:
    return run_name([model, *questions.label_parts()], evaluation_id)


class EvaluationRunRecord:
    """The MLflow run of one evaluation (``tracking`` settings: ``tracking_uri``,
    ``experiment``) of ``questions`` by the model labelled ``model``, with the name, params and
    tags it is created with."""

    def __init__(self, tracking: Mapping[str, Any], store: PredictionStore, manifest: Manifest,
                 questions: Questions, *, model: str, run_name: str, params: Mapping[str, Any],
                 tags: Mapping[str, str]) -> None:
        self.tracking_uri: str = tracking["tracking_uri"]
        self.experiment: str = tracking["experiment"]
        self.table_images: bool = tracking.get("table_images", True)
        self.store = store
        self.manifest = manifest
        self.questions = questions
        self.model = model
        self.run_name = run_name
        self.params = params
        self.tags = tags
        self.run_id: str | None = None
        self._heartbeat = None

    def open(self) -> str:
        """The run's id, opening it (once): recorded in the manifest, its data logged, its
        heartbeat started."""
        if self.run_id is None:
            from crossmath.tracking import mlflow_store
            from crossmath.tracking.datasets import log_dataset
            from crossmath.tracking.liveness import Heartbeat

            note = evaluation_note(model=self.model, asked=self.questions.describe(),
                                   command=command_line())
            self.run_id = mlflow_store.open_evaluation_run(
                tracking_uri=self.tracking_uri, experiment=self.experiment,
                evaluation_id=self.manifest.evaluation_id, run_name=self.run_name,
                params=self.params, tags={**self.tags, RUN_NOTE_TAG: note})
            self.manifest = record_mlflow_run(self.store, self.manifest, self.run_id)
            log.info("evaluation %s: results in %s, MLflow run %s",
                     self.manifest.evaluation_id[:SHORT_ID], self.store.root, self.run_id)
            self._heartbeat = Heartbeat(self.tracking_uri, self.run_id).start()
            log_dataset(self.tracking_uri, self.run_id, self.questions.dataset(),
                        EVALUATION_CONTEXT)
        return self.run_id

    def finish(self, *, scores: Scores, predictions: pa.Table, failures: FailureReport,
               model_name: str, tags: Mapping[str, str], artifacts: Iterable[Path]) -> None:
        """The headline and detailed metrics, the evaluation table, the description with the
        headline numbers, ``tags`` and the files into the run, closed as finished (tagged
        incomplete when some request failed)."""
        from crossmath.tracking import evaluation_table, mlflow_store
        from crossmath.tracking.run_end import clear_end_cause

        run_id = self.open()
        headline = headline_of(scores, model_name)
        table = self.questions.prediction_table(predictions, with_images=self.table_images)
        evaluation_table.log_evaluation_table(self.tracking_uri, run_id, table.rows,
                                              table.images, columns=COLUMNS)
        note = evaluation_note(model=self.model, asked=self.questions.describe(),
                               command=command_line(), n_requests=failures.n_requests,
                               n_failed=failures.n_failed, headline=headline,
                               out_dir=self.store.root)
        tags = {mlflow_store.INCOMPLETE_TAG: str(not failures.complete).lower(),
                RUN_NOTE_TAG: note, **tags}
        mlflow_store.finish_evaluation_run(
            self.tracking_uri, run_id, tags=tags, artifacts=artifacts,
            metrics={**headline, **scores.flat_metrics(model_name), **failures.flat_metrics()})
        clear_end_cause(self.tracking_uri, run_id)

    def ended(self, error: BaseException) -> None:
        """The run, if it was opened, marked KILLED or FAILED by ``error``."""
        if self.run_id is not None:
            from crossmath.tracking.run_end import mark_run_ended

            mark_run_ended(self.tracking_uri, self.run_id, error)

    def close(self) -> None:
        """Stop the heartbeat (the run's status is ``finish``'s or ``ended``'s)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
