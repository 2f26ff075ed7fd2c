"""The main job's door: a composed ``conf/run.yaml`` checked before Ray starts or a model loads,
and turned into ``RunSettings`` once (``RunSettings.from_config``): plain values, the styles
resolved into ``Style`` objects (the render actors draw with them, never re-reading a style's
file on a worker), the resources into ``StageResources``.

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
from crossmath.pipeline.dataflow import StageResources
from crossmath.pipeline.requests import PLAN_MODALITIES
from crossmath.pipeline.sources import IMAGE_CHOICES, RELEASE_TEXT_STYLE, release_style_jsonl
from crossmath.runtime.errors import ConfigError
from crossmath.runtime.ray_cluster import connect_timeout
from crossmath.settings.checks import (
    existing_path,
    modality_names,
    model_options,
    non_empty_file,
    non_negative_number,
    one_of,
    puzzle_generation,
    resolved_styles,
    whole_number,
    writable_folder,
)
from crossmath.tasks import TASKS

DATA_KINDS = ("generated", "official")
CROSSMATH_TASK = "crossmath"  # the task of CrossMath's own puzzles (conf/task/crossmath.yaml)


@dataclass(frozen=True)
class RunSettings:
    """One evaluation's settings (``conf/run.yaml``), checked, as the main job reads them.

    ``model`` is the model config (the backend's arguments and its prompt set's name),
    ``task``, ``data``, ``ray`` and ``mlflow`` their config groups as plain dicts; ``styles``
    maps each of ``style_names`` (shipped names or YAML paths) to its ``Style`` (empty for a
    transfer task, which shows its own images); ``config`` is the whole config, resolved (the
    MLflow run's params).
    """

    model: dict[str, Any]
    task: dict[str, Any]
    data: dict[str, Any]
    modalities: tuple[str, ...]
    style_names: tuple[str, ...]  # as given (names or paths): what requests are keyed by
    styles: Mapping[str, Style]
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
        styles: dict[str, Style] = {}
        if check_task_options(options["task"]) == CROSSMATH_TASK:
            modalities = modality_names(options["modalities"], known=PLAN_MODALITIES)
            styles = resolved_styles(options["styles"])
            if not styles and any(m != "text" for m in modalities):
                raise ConfigError("styles", "is empty, but image, hybrid and transcribe "
                                            "requests need a style")
            check_data_options(options["data"])
        whole_number(options["samples"], "samples")
        model_options(options["model"])
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
            styles=styles,
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

    A transfer task (``task`` other than crossmath) asks its own items: ``data``,
    ``modalities`` and ``styles`` do not apply to it and are not checked.
    """
    RunSettings.from_config(cfg)


def check_task_options(task: Mapping[str, Any], where: str = "task") -> str:
    """The ``task`` group: CrossMath's puzzles, or a transfer task with its local copy (a path
    that exists; null fetches it from the Hub) and item count. Returns the task's name."""
    name = one_of(task.get("name"), f"{where}.name", [CROSSMATH_TASK, *sorted(TASKS)])
    if name == CROSSMATH_TASK:
        return name
    if task.get("path") is not None:
        existing_path(task["path"], f"{where}.path")
    whole_number(task.get("n"), f"{where}.n", none_means="every item")
    breakdown = task.get("breakdown")
    if not isinstance(breakdown, list) or not all(isinstance(f, str) for f in breakdown):
        raise ConfigError(f"{where}.breakdown", f"must be a list of field names, got {breakdown!r}")
    check_judge_options(name, task, where)
    return name


def check_judge_options(name: str, task: Mapping[str, Any], where: str = "task") -> None:
    """A judge model (a model config) only for a task whose official scoring is a judge
    (MathVerse); its prompts file, when given, exists."""
    judge = task.get("judge")
    if judge is not None:
        if not TASKS[name].official_by_judge:
            raise ConfigError(f"{where}.judge", f"{name}'s official scoring is a rule, run "
                              "without a judge model; leave task.judge out")
        if not isinstance(judge, Mapping):
            raise ConfigError(f"{where}.judge", "must be a model config, e.g. "
                              f"+model@{where}.judge=openai, got {judge!r}")
        model_options(judge, f"{where}.judge")
    if task.get("judge_prompts") is not None:
        existing_path(task["judge_prompts"], f"{where}.judge_prompts")


def check_data_options(data: Mapping[str, Any], where: str = "data") -> None:
    """The ``data`` group: generated puzzles, or the official release."""
    kind = one_of(data.get("kind"), f"{where}.kind", DATA_KINDS)
    if kind == "generated":
        whole_number(data.get("n"), f"{where}.n")
        puzzle_generation(data.get("difficulty"), data.get("generator"), where)
        whole_number(data.get("seed"), f"{where}.seed", minimum=0)
        return
    whole_number(data.get("n"), f"{where}.n", none_means="every puzzle")
    one_of(data.get("images", "release"), f"{where}.images", IMAGE_CHOICES)
    if data.get("path") is not None:
        release_jsonl(data["path"], f"{where}.path")


def release_jsonl(value: Any, where: str) -> Path:
    """The testset jsonl a path names: the file itself, or the release folder's original-style
    file (``Original/testset_hr.jsonl``)."""
    path = existing_path(value, where)
    jsonl = path if path.is_file() else release_style_jsonl(path, RELEASE_TEXT_STYLE)
    if not jsonl.is_file():
        raise ConfigError(where, f"{path} is a folder without the release's layout: expected "
                                 f"{jsonl.relative_to(path)} in it (or give the path of a "
                                 "testset jsonl)")
    return non_empty_file(jsonl, where)


def check_resources(resources: Mapping[str, Any], where: str = "resources") -> None:
    for key in ("render_actors", "infer_actors"):
        whole_number(resources.get(key), f"{where}.{key}")
    whole_number(resources.get("call_sequences"), f"{where}.call_sequences",
                 none_means="the model's own batch size")
    whole_number(resources.get("call_tokens"), f"{where}.call_tokens", none_means="no token cap")
    for key in ("infer_gpus", "infer_cpus"):
        non_negative_number(resources.get(key), f"{where}.{key}")
