"""The fine-tuning job behind ``python -m crossmath.train``, for a composed ``conf/train.yaml``.

1. Check the settings of the chosen ``method`` (``sft``: ``loop.TrainJob``; ``grpo``:
   ``grpo.GrpoJob``, optionally from ``init_adapter``) before anything runs.
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
    TrainingSetSpec,
    build_training_set,
    evaluation_puzzles,
)
from crossmath.finetuning.grpo import GrpoJob, GrpoSettings
from crossmath.finetuning.loop import TrainJob
from crossmath.finetuning.modeling import ModelSpec
from crossmath.finetuning.reporting import MetricSink
from crossmath.finetuning.study_data import STUDY_SOURCE, StudySource
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.finetuning.worker_protocol import WorkerJob
from crossmath.runtime.ray_cluster import connect_ray
from crossmath.runtime.stops import Stopped
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


def train(options: Mapping[str, Any]) -> TrainOutcome:
    """The whole job for ``conf/train.yaml`` as the door reads it (plain values, checked:
    ``crossmath.settings.train.train_options``); returns where the adapter went."""
    from crossmath.finetuning.ray_trainer import RayScaling, fit, share_examples

    out = Path(options["out_dir"]).expanduser().resolve()
    settings = TrainSettings.from_mapping(options["train"])
    model_config = dict(options["model"])
    ModelSpec.from_backend_config(model_config)  # a model that cannot be trained fails here
    make_job = method_job(options, model_config, settings)
    training_set = build_dataset(options["dataset"])
    connect_ray(options["ray"], dashboard=True)
    uri = options["mlflow"]["tracking_uri"]
    run_id = _open_mlflow_run(options, out, training_set.manifest)
    log_dataset(uri, run_id, training_dataset(training_set), context="training")
    log.info("training %s (%s) on %d worker(s); MLflow run %s; state in %s",
             model_config["name"], options["method"], options["scaling"]["num_workers"], run_id,
             out)

    sink = MetricSink(uri, run_id, tracking.last_logged_steps(uri, run_id))  # a resumed run's
    job = make_job(load_examples=share_examples(training_set.read()), metrics=sink)
    try:
        with Heartbeat(uri, run_id):
            result = fit(job, RayScaling(**options["scaling"]),
                         storage_path=out / "ray", name=options["run_name"])
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


def method_job(options: Mapping[str, Any], model_config: Mapping[str, Any],
               settings: TrainSettings) -> Callable[..., WorkerJob]:
    """The job class of ``method`` with its checked settings, waiting for the examples and
    the metric sink (``load_examples=``, ``metrics=``)."""
    method = options["method"]
    if method == "sft":
        return functools.partial(TrainJob, model_config, settings)
    if method == "grpo":
        grpo = GrpoSettings.from_mapping(options["grpo"])
        grpo.prompts_per_worker(options["scaling"]["num_workers"])  # here, not on every worker
        return functools.partial(GrpoJob, model_config, settings, grpo,
                                 init_adapter=initial_adapter(options.get("init_adapter")))
    raise ValueError(f"method must be sft or grpo, got {method!r}")


def initial_adapter(path: str | None) -> str | None:
    """``init_adapter`` as an absolute folder that holds an adapter (every worker reads it)."""
    if not path:
        return None
    folder = Path(path).expanduser().resolve()
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"init_adapter={path}: no adapter_config.json in {folder}; give the "
                                f"adapter folder of a finished run, e.g. runs/train/<model>/{ADAPTER_DIR}")
    return str(folder)


def build_dataset(dataset: Mapping[str, Any]) -> TrainingSet:
    """The ``dataset`` section's training set, built or reused, clear of its evaluation sets."""
    fields = dict(dataset)
    build_dir, study_path, cache_dir = fields.pop("build_dir"), fields.pop("path"), fields.pop("cache_dir")
    official = fields.pop("exclude_official")
    exclusion = Exclusion.of(evaluation_puzzles(fields.pop("exclude_generated") or [], official))
    spec = TrainingSetSpec.from_mapping(fields)
    study = None
    if STUDY_SOURCE in spec.sources:
        study = StudySource.open(study_path, cache_dir)
        if official is None:
            log.warning("dataset.exclude_official is not set: the study's records are not checked "
                        "against the official test set (set it to the release folder or a "
                        "testset jsonl)")
    return build_training_set(spec, build_dir, exclusion, study)


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


def _open_mlflow_run(options: Mapping[str, Any], out: Path, manifest: Mapping[str, Any]) -> str:
    """A new MLflow run, or the one this ``out_dir`` already trains into (a resumed run)."""
    run_id_file = out / RUN_ID_FILE
    mlflow, model = options["mlflow"], options["model"]["name"]
    run_id = tracking.open_run(
        tracking_uri=mlflow["tracking_uri"], experiment=mlflow["experiment"],
        run_name=mlflow.get("run_name") or f"{model}/{options['run_name']}",
        params=dict(options),
        tags={"model": model, "git_commit": tracking.git_commit(), "kind": "train",
              "method": options["method"], "dataset_fingerprint": manifest["fingerprint"],
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
