"""The fine-tuning job's door: a composed ``conf/train.yaml`` checked before the training set is
built, Ray starts or a model loads (``crossmath.settings.run`` is the main job's)."""

from __future__ import annotations

from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from crossmath.finetuning.dataset import TrainingSetSpec
from crossmath.finetuning.grpo import GrpoSettings
from crossmath.finetuning.modeling import ModelSpec
from crossmath.finetuning.study_data import STUDY_SOURCE, study_folder
from crossmath.finetuning.train_settings import TrainSettings
from crossmath.settings.checks import (
    adapter_folder,
    existing_path,
    non_negative_number,
    prompt_set,
    puzzle_generation,
    style_names,
    validated,
    whole_number,
    writable_folder,
)
from crossmath.tasks.crossmath.options import check_data_options, release_jsonl


def train_options(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` checked (a ``ConfigError`` names the first option that cannot work) and resolved
    into plain values: what the training job (``crossmath.finetuning.job.train``) reads."""
    options = (OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig)
               else dict(cfg))
    check_train_options(options)
    return options


def check_train_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` naming the first option of ``cfg`` that cannot work."""
    train_options(cfg)


def check_train_options(options: Mapping[str, Any]) -> None:
    """The checks of ``check_train_config``, on the resolved options."""
    writable_folder(options["out_dir"], "out_dir")
    check_dataset_options(options["dataset"])
    validated(lambda: TrainSettings.from_mapping(options["train"]), "train")
    scaling = options["scaling"]
    whole_number(scaling.get("num_workers"), "scaling.num_workers")
    non_negative_number(scaling.get("cpus_per_worker"), "scaling.cpus_per_worker")
    whole_number(scaling.get("max_failures"), "scaling.max_failures", minimum=0)
    if options["method"] == "grpo":
        check_grpo_options(options, scaling["num_workers"])
    # Last: for a model built on first use (tiny-random) this builds it, as training would.
    validated(lambda: ModelSpec.from_backend_config(options["model"]), "model")
    if options["model"].get("prompt") is not None:
        prompt_set(options["model"]["prompt"], "model.prompt")


def check_grpo_options(options: Mapping[str, Any], num_workers: int) -> None:
    """GRPO's settings (``grpo``) and its starting adapter (``init_adapter``)."""
    grpo = validated(lambda: GrpoSettings.from_mapping(options["grpo"]), "grpo")
    validated(lambda: grpo.prompts_per_worker(num_workers), "grpo")
    if options.get("init_adapter"):
        adapter_folder(options["init_adapter"], "init_adapter")


def check_dataset_options(dataset: Mapping[str, Any], where: str = "dataset") -> None:
    """The training set's options, and the evaluation sets it must keep out."""
    fields = dict(dataset)
    writable_folder(fields.pop("build_dir"), f"{where}.build_dir")
    study_path, cache_dir = fields.pop("path"), fields.pop("cache_dir")
    if STUDY_SOURCE in (fields.get("sources") or ()):
        if study_path is not None:
            validated(lambda: study_folder(str(existing_path(study_path, f"{where}.path"))),
                      f"{where}.path")
        elif cache_dir is not None:
            writable_folder(cache_dir, f"{where}.cache_dir")
    for index, entry in enumerate(fields.pop("exclude_generated") or []):
        check_data_options({**entry, "kind": "generated"}, f"{where}.exclude_generated[{index}]")
    official = fields.pop("exclude_official")
    if official is not None:
        release_jsonl(official, f"{where}.exclude_official")
    puzzle_generation(fields.get("difficulty"), fields.get("generator"), where)
    style_names(fields.get("styles", ()), f"{where}.styles")
    validated(lambda: TrainingSetSpec.from_mapping(fields), where)
