"""The fine-tuning job's door: a composed ``conf/train.yaml`` checked before the training set is
built, Ray starts or a model loads, and read once into ``TrainJobSettings``
(``crossmath.settings.run`` is the main job's).

Each section is parsed into the object the job uses (``train`` into ``TrainSettings``, ``grpo``
into ``GrpoSettings``, ``dataset`` into ``DatasetSettings`` with its styles resolved,
``scaling`` into ``RayScaling``, the model into its ``ModelSpec``), so the job reads fields
and never parses a section again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from crossmath.drawing import Style
from crossmath.finetuning.dataset import TrainingSetSpec
from crossmath.finetuning.grpo_settings import GrpoSettings
from crossmath.finetuning.model_spec import ModelSpec, check_trainable
from crossmath.finetuning.scaling import RayScaling
from crossmath.finetuning.study_data import STUDY_SOURCE, study_folder
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.models.prompts import DEFAULT_PROMPT
from crossmath.settings.checks import (
    adapter_folder,
    existing_path,
    non_negative_number,
    puzzle_generation,
    resolved_prompt_set,
    resolved_styles,
    validated,
    whole_number,
    writable_folder,
)
from crossmath.tasks.crossmath.options import check_data_options, release_jsonl


@dataclass(frozen=True)
class DatasetSettings:
    """The ``dataset`` section, checked: what to build (``spec``), where (``build_dir``), the
    study's files (``study_path`` or the Hub, cached in ``cache_dir``), the evaluation sets to
    keep out (``exclude_generated`` entries, ``exclude_official`` as given) and each of
    ``spec.styles`` resolved into its ``Style``."""

    spec: TrainingSetSpec
    build_dir: str
    study_path: str | None
    cache_dir: str | None
    exclude_generated: tuple[dict[str, Any], ...]
    exclude_official: str | None
    styles: Mapping[str, Style]

    @classmethod
    def from_mapping(cls, dataset: Mapping[str, Any], where: str = "dataset") -> "DatasetSettings":
        """The training set's options checked (a ``ConfigError`` names the first wrong one),
        and the evaluation sets it must keep out."""
        fields = dict(dataset)
        build_dir = fields.pop("build_dir")
        writable_folder(build_dir, f"{where}.build_dir")
        study_path, cache_dir = fields.pop("path"), fields.pop("cache_dir")
        if STUDY_SOURCE in (fields.get("sources") or ()):
            if study_path is not None:
                validated(lambda: study_folder(str(existing_path(study_path, f"{where}.path"))),
                          f"{where}.path")
            elif cache_dir is not None:
                writable_folder(cache_dir, f"{where}.cache_dir")
        exclude_generated = tuple(dict(entry) for entry in fields.pop("exclude_generated") or [])
        for index, entry in enumerate(exclude_generated):
            check_data_options({**entry, "kind": "generated"}, f"{where}.exclude_generated[{index}]")
        official = fields.pop("exclude_official")
        if official is not None:
            release_jsonl(official, f"{where}.exclude_official")
        puzzle_generation(fields.get("difficulty"), fields.get("generator"), where)
        styles = resolved_styles(fields.get("styles", ()), f"{where}.styles")
        spec = validated(lambda: TrainingSetSpec.from_mapping(fields), where)
        return cls(spec=spec, build_dir=build_dir, study_path=study_path, cache_dir=cache_dir,
                   exclude_generated=exclude_generated, exclude_official=official, styles=styles)


@dataclass(frozen=True)
class TrainJobSettings:
    """One fine-tuning run's settings (``conf/train.yaml``), checked, as the job reads them.

    ``model`` is the backend config as given (its name; the MLflow run's params hold it with
    ``config``), ``model_spec`` the model resolved from it on the driver (its prompt set read,
    a model built on first use built), which the workers receive; ``grpo`` is set for
    ``method=grpo`` only, with ``init_adapter`` (an absolute adapter folder, or None for fresh adapters);
    ``out_dir`` is absolute; ``config`` is the whole config, resolved (the MLflow run's params).
    """

    method: str
    model: dict[str, Any]
    model_spec: ModelSpec
    train: TrainSettings
    grpo: GrpoSettings | None
    init_adapter: str | None
    dataset: DatasetSettings
    scaling: RayScaling
    out_dir: Path
    run_name: str
    ray: dict[str, Any]
    mlflow: dict[str, Any]
    config: dict[str, Any] = field(repr=False)

    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any]) -> "TrainJobSettings":
        """``cfg`` checked (a ``ConfigError`` names the first option that cannot work) and
        read."""
        options = (OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig)
                   else dict(cfg))
        writable_folder(options["out_dir"], "out_dir")
        dataset = DatasetSettings.from_mapping(options["dataset"])
        train = validated(lambda: TrainSettings.from_mapping(options["train"]), "train")
        scaling = options["scaling"]
        whole_number(scaling.get("num_workers"), "scaling.num_workers")
        non_negative_number(scaling.get("cpus_per_worker"), "scaling.cpus_per_worker")
        whole_number(scaling.get("max_failures"), "scaling.max_failures", minimum=0)
        grpo, init_adapter = None, None
        if options["method"] == "grpo":
            grpo = validated(lambda: GrpoSettings.from_mapping(options["grpo"]), "grpo")
            validated(lambda: grpo.prompts_per_worker(scaling["num_workers"]), "grpo")
            if options.get("init_adapter"):
                init_adapter = str(adapter_folder(options["init_adapter"], "init_adapter").resolve())
        model = options["model"]
        validated(lambda: check_trainable(model), "model")
        prompts = resolved_prompt_set(model.get("prompt") or DEFAULT_PROMPT, "model.prompt")
        # Last: for a model built on first use (tiny-random) this builds it, as training would.
        model_spec = validated(lambda: ModelSpec.from_backend_config(model, prompts), "model")
        return cls(
            method=options["method"], model=dict(model), model_spec=model_spec,
            train=train, grpo=grpo, init_adapter=init_adapter, dataset=dataset,
            scaling=validated(lambda: RayScaling(**scaling), "scaling"),
            out_dir=Path(options["out_dir"]).expanduser().resolve(),
            run_name=options["run_name"], ray=options["ray"], mlflow=options["mlflow"],
            config=options)

    @property
    def model_name(self) -> str:
        return str(self.model["name"])


def check_train_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` naming the first option of ``cfg`` that cannot work."""
    TrainJobSettings.from_config(cfg)
