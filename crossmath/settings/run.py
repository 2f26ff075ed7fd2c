"""The main job's door: a composed ``conf/run.yaml`` checked before Ray starts or a model loads,
and turned into ``RunSettings`` once (``RunSettings.from_config``): plain values, the styles
resolved into ``Style`` objects (the task plans and identifies with them and the render actors
draw with them: a style's file is read here, never again), the model's prompt set into its
``PromptSet`` and its adapter into the folder found, the resources into ``StageResources``.

A wrong option found here costs a second and one line naming it; found inside a Ray worker it
costs the start of Ray, a retried actor and a wrapped traceback. What can only be found by
doing the work (a malformed line deep in a jsonl, a model folder a worker cannot read) is still
reported where it happens, naming file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from crossmath.drawing import Style
from crossmath.models.prompts import PromptSet
from crossmath.pipeline.dataflow import StageResources
from crossmath.runtime.ray_cluster import connect_timeout
from crossmath.settings.checks import (
    model_options,
    non_negative_number,
    one_of,
    resolved_styles,
    whole_number,
    writable_folder,
)
from crossmath.tasks import TASKS
from crossmath.tasks.questions import STYLES


@dataclass(frozen=True)
class RunSettings:
    """One evaluation's settings (``conf/run.yaml``), checked, as the main job reads them.

    ``model`` is the model config (the backend's arguments and its prompt set's name),
    ``task``, ``data``, ``ray`` and ``mlflow`` their config groups as plain dicts; ``styles``
    maps each of ``style_names`` (shipped names or YAML paths) to its ``Style`` (empty for a
    transfer task, which shows its own images); ``prompt_set`` is the model's prompt set, read
    (None: a model shown no prompt), ``adapter`` its adapter folder (None: none); ``config`` is
    the whole config, resolved (the MLflow run's params).
    """

    model: dict[str, Any]
    task: dict[str, Any]
    data: dict[str, Any]
    modalities: tuple[str, ...]
    style_names: tuple[str, ...]  # as given (names or paths): what requests are keyed by
    styles: Mapping[str, Style]
    prompt_set: PromptSet | None
    adapter: Path | None
    samples: int
    max_attempts: int
    resources: StageResources
    out_dir: str | None
    runs_dir: str
    ray: dict[str, Any]
    mlflow: dict[str, Any]
    config: dict[str, Any] = field(repr=False)

    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any]) -> "RunSettings":
        """``cfg`` checked (a ``ConfigError`` names the first option that cannot work) and
        read."""
        options = (OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig)
                   else dict(cfg))
        task = TASKS[one_of(options["task"].get("name"), "task.name", sorted(TASKS))]
        task.check(options["task"], options)  # its own group and the run options it reads
        styles = resolved_styles(options["styles"]) if STYLES in task.reads else {}
        whole_number(options["samples"], "samples")
        model = model_options(options["model"])
        check_resources(options["resources"])
        if options.get("out_dir") is None:  # the evaluation's folder is made under runs_dir
            writable_folder(options["runs_dir"], "runs_dir")
        else:
            writable_folder(options["out_dir"], "out_dir")
        whole_number(options["max_attempts"], "max_attempts")
        connect_timeout(options["ray"])
        return cls(
            model=options["model"], task=options["task"], data=options["data"],
            modalities=tuple(options["modalities"]), style_names=tuple(options["styles"]),
            styles=styles, prompt_set=model.prompt_set, adapter=model.adapter,
            samples=options["samples"], max_attempts=options["max_attempts"],
            resources=StageResources(**options["resources"]), out_dir=options.get("out_dir"),
            runs_dir=options["runs_dir"], ray=options["ray"], mlflow=options["mlflow"],
            config=options)

    @property
    def model_name(self) -> str:
        return str(self.model["name"])

    @property
    def task_name(self) -> str:
        return str(self.task["name"])


def check_run_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` naming the first option of ``cfg`` that cannot work.

    The task (``task.name``, from the registry) checks its own group and the run options it
    reads (CrossMath: ``data``, ``modalities``, ``styles``; a transfer task asks its own items
    and reads none of them).
    """
    RunSettings.from_config(cfg)


def check_resources(resources: Mapping[str, Any], where: str = "resources") -> None:
    for key in ("render_actors", "infer_actors"):
        whole_number(resources.get(key), f"{where}.{key}")
    whole_number(resources.get("call_sequences"), f"{where}.call_sequences",
                 none_means="the model's own batch size")
    whole_number(resources.get("call_tokens"), f"{where}.call_tokens", none_means="no token cap")
    for key in ("infer_gpus", "infer_cpus"):
        non_negative_number(resources.get(key), f"{where}.{key}")
