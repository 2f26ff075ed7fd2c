"""The fine-tuning job behind ``python -m crossmath.train``, for ``conf/train.yaml`` as the door
read it (``crossmath.settings.train.TrainJobSettings``: every section checked and parsed once).

1. Make the job of the chosen ``method`` (``sft``: ``loop.TrainJob``; ``grpo``:
   ``grpo.GrpoJob``, optionally from ``init_adapter``).
2. Build (or reuse) the training set in ``dataset.build_dir`` (generated puzzles, the study's
   set from ``dataset.path`` or the Hub, or both), disjoint from the evaluation sets.
3. Open an MLflow run (the same one again when resuming) with the resolved config.
4. Train on ``scaling.num_workers`` Ray Train workers; rank 0 logs metrics as it goes.
5. Copy the final adapter to ``<out_dir>/adapter``, attach it to the MLflow run, close the run.

Running the same command again resumes: Ray Train finds its run under ``<out_dir>/ray`` and
the workers continue from the latest checkpoint; the MLflow run id is kept in
``<out_dir>/mlflow_run_id`` so the metrics continue in the same run.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from crossmath.core.dataset_ref import DatasetRef
from crossmath.finetuning.checkpoints import ADAPTER_DIR
from crossmath.finetuning.dataset import (
    GENERATED,
    Exclusion,
    TrainingSet,
    build_training_set,
    evaluation_puzzles,
)
from crossmath.finetuning.grpo import GrpoJob
from crossmath.finetuning.loop import TrainJob
from crossmath.finetuning.ray_trainer import fit, share_examples
from crossmath.finetuning.reporting import MetricSink
from crossmath.finetuning.study_data import STUDY_SOURCE, StudySource
from crossmath.finetuning.worker_protocol import WorkerJob
from crossmath.runtime.ray_cluster import connect_ray
from crossmath.runtime.stops import Stopped
from crossmath.settings.train import DatasetSettings, TrainJobSettings
from crossmath.tracking import mlflow_store as tracking
from crossmath.tracking.datasets import log_dataset
from crossmath.tracking.liveness import Heartbeat
from crossmath.tracking.run_end import mark_run_ended

log = logging.getLogger("crossmath.train")

RUN_ID_FILE = "mlflow_run_id"
SUMMARY_FILE = "train_summary.json"


@dataclass(frozen=True)
class TrainOutcome:
    adapter: Path
    summary: dict[str, Any]
    run_id: str


def train(settings: TrainJobSettings) -> TrainOutcome:
    """The whole job for ``conf/train.yaml`` as the door reads it (checked and parsed once:
    ``crossmath.settings.train.TrainJobSettings``); returns where the adapter went."""
    out = settings.out_dir
    make_job = method_job(settings)
    training_set = build_dataset(settings.dataset)
    connect_ray(settings.ray, dashboard=True)
    uri = settings.mlflow["tracking_uri"]
    run_id = _open_mlflow_run(settings, training_set.manifest)
    log_dataset(uri, run_id, training_dataset(training_set), context="training")
    log.info("training %s (%s) on %d worker(s); MLflow run %s; state in %s",
             settings.model_name, settings.method, settings.scaling.num_workers, run_id, out)

    sink = MetricSink(uri, run_id, tracking.last_logged_steps(uri, run_id))  # a resumed run's
    job = make_job(load_examples=share_examples(training_set.read()), metrics=sink)
    try:
        with Heartbeat(uri, run_id):
            result = fit(job, settings.scaling, storage_path=out / "ray", name=settings.run_name)
    except SystemExit as exit_:  # Ray Train's own Ctrl-C handler aborted the run and exits
        stop = Stopped(signal.SIGINT)
        mark_run_ended(uri, run_id, stop)
        raise stop from exit_
    except BaseException as error:  # KILLED on a stop, FAILED on an error, with its cause
        mark_run_ended(uri, run_id, error)
        raise
    adapter = out / ADAPTER_DIR
    _copy_adapter(result.checkpoint, adapter)
    summary = dict(result.metrics)
    summary_path = out / SUMMARY_FILE
    summary_path.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    tracking.close_run(uri, run_id, artifacts=[adapter, summary_path])
    log.info("adapter saved to %s", adapter)
    return TrainOutcome(adapter, summary, run_id)


def method_job(settings: TrainJobSettings) -> Callable[..., WorkerJob]:
    """The job class of ``method`` with its settings, waiting for the examples and the metric
    sink (``load_examples=``, ``metrics=``)."""
    if settings.method == "sft":
        return functools.partial(TrainJob, settings.model_spec, settings.train)
    if settings.method == "grpo":
        return functools.partial(GrpoJob, settings.model_spec, settings.train, settings.grpo,
                                 init_adapter=settings.init_adapter)
    raise ValueError(f"method must be sft or grpo, got {settings.method!r}")


def build_dataset(dataset: DatasetSettings) -> TrainingSet:
    """The ``dataset`` section's training set, built or reused, clear of its evaluation sets."""
    exclusion = Exclusion.of(evaluation_puzzles(dataset.exclude_generated, dataset.exclude_official))
    study = None
    if STUDY_SOURCE in dataset.spec.sources:
        study = StudySource.open(dataset.study_path, dataset.cache_dir)
        if dataset.exclude_official is None:
            log.warning("dataset.exclude_official is not set: the study's records are not checked "
                        "against the official test set (set it to the release folder or a "
                        "testset jsonl)")
    return build_training_set(dataset.spec, dataset.build_dir, exclusion, study,
                              styles=dataset.styles)


def training_dataset(training_set: TrainingSet) -> DatasetRef:
    """The training set as the run's dataset input: named by its sources, its fingerprint, and
    the folder it was built in."""
    spec = training_set.manifest["spec"]
    names = []
    if STUDY_SOURCE in spec.get("sources", ()):
        names.append("crossmath-train" + (f"-n{spec['records']}" if spec.get("records") else ""))
    if GENERATED in spec.get("sources", (GENERATED,)):
        names.append(f"train-{spec['difficulty']}-n{spec['n_puzzles']}-seed{spec['seed']}")
    return DatasetRef.of_path("+".join(names), training_set.manifest["fingerprint"],
                              training_set.folder)


def _open_mlflow_run(settings: TrainJobSettings, manifest: Mapping[str, Any]) -> str:
    """A new MLflow run, or the one this ``out_dir`` already trains into (a resumed run)."""
    run_id_file = settings.out_dir / RUN_ID_FILE
    mlflow, model = settings.mlflow, settings.model_name
    run_id = tracking.open_run(
        tracking_uri=mlflow["tracking_uri"], experiment=mlflow["experiment"],
        run_name=mlflow.get("run_name") or f"{model}/{settings.run_name}",
        params=dict(settings.config),
        tags={"model": model, "git_commit": tracking.git_commit(), "kind": "train",
              "method": settings.method, "dataset_fingerprint": manifest["fingerprint"],
              "dataset_content_fingerprint": manifest["content_fingerprint"],
              "dataset_source": manifest["source"]},
        run_id=run_id_file.read_text().strip() if run_id_file.is_file() else None,
    )
    run_id_file.parent.mkdir(parents=True, exist_ok=True)
    run_id_file.write_text(run_id + "\n", encoding="utf-8")
    return run_id


def _copy_adapter(checkpoint, target: Path) -> None:
    """The adapter of the final checkpoint, swapped into ``target`` whole."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".adapter-") as staging:
        folder = Path(checkpoint.to_directory(str(Path(staging) / "checkpoint")))
        if not (folder / ADAPTER_DIR / "adapter_config.json").is_file():
            raise FileNotFoundError(f"the final checkpoint {checkpoint.path} holds no adapter")
        if target.exists():
            shutil.rmtree(target)
        (folder / ADAPTER_DIR).rename(target)
