"""An evaluation's MLflow run, opened when the evaluation first needs it.

The run is opened (or reopened) before any request is asked, which is also the check that the
tracking store answers, or, when nothing is left to ask, before results are written. A resumed
evaluation whose results are already logged (``refresh``) never opens it, and never imports
MLflow: that is most of the time a no-op resume would otherwise take.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from crossmath.pipeline.results_folder import SHORT_ID, Manifest, record_mlflow_run
from crossmath.pipeline.shards import PredictionStore

log = logging.getLogger(__name__)


class EvaluationRunRecord:
    """The MLflow run of one evaluation (``tracking`` settings: ``tracking_uri``,
    ``experiment``), with the name, params and tags it is created with."""

    def __init__(self, tracking: Mapping[str, Any], store: PredictionStore, manifest: Manifest,
                 *, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        self.tracking_uri: str = tracking["tracking_uri"]
        self.experiment: str = tracking["experiment"]
        self.store = store
        self.manifest = manifest
        self.run_name = run_name
        self.params = params
        self.tags = tags
        self.run_id: str | None = None

    def open(self) -> str:
        """The run's id, opening it (once) and recording it in the manifest."""
        if self.run_id is None:
            from crossmath.tracking import mlflow_store

            self.run_id = mlflow_store.open_evaluation_run(
                tracking_uri=self.tracking_uri, experiment=self.experiment,
                evaluation_id=self.manifest.evaluation_id, run_name=self.run_name,
                params=self.params, tags=self.tags)
            self.manifest = record_mlflow_run(self.store, self.manifest, self.run_id)
            log.info("evaluation %s: results in %s, MLflow run %s",
                     self.manifest.evaluation_id[:SHORT_ID], self.store.root, self.run_id)
        return self.run_id

    def finish(self, *, metrics: Mapping[str, float], incomplete: bool, tags: Mapping[str, str],
               artifacts: Iterable[Path]) -> None:
        """The latest metrics, tags and files into the run, closed as finished; ``incomplete``
        when some request failed."""
        from crossmath.tracking import mlflow_store
        from crossmath.tracking.run_end import clear_end_cause

        run_id = self.open()
        tags = {mlflow_store.INCOMPLETE_TAG: str(incomplete).lower(), **tags}
        mlflow_store.finish_evaluation_run(self.tracking_uri, run_id, metrics=metrics, tags=tags,
                                           artifacts=artifacts)
        clear_end_cause(self.tracking_uri, run_id)

    def ended(self, error: BaseException) -> None:
        """The run, if it was opened, marked KILLED or FAILED by ``error``."""
        if self.run_id is not None:
            from crossmath.tracking.run_end import mark_run_ended

            mark_run_ended(self.tracking_uri, self.run_id, error)
