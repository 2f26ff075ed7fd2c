"""The main job's door: a composed ``conf/run.yaml`` checked before Ray starts or a model loads.

A wrong option found here costs a second and one line naming it; found inside a Ray worker it
costs the start of Ray, a retried actor and a wrapped traceback. What can only be found by
doing the work (a malformed line deep in a jsonl, a model folder a worker cannot read) is still
reported where it happens, naming file, line and field.
"""

from __future__ import annotations

from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from crossmath.runtime.checks import (
    model_options,
    non_negative_number,
    one_of,
    whole_number,
    writable_folder,
)
from crossmath.runtime.ray_cluster import connect_timeout
from crossmath.tasks import TASKS


def check_run_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` naming the first option of ``cfg`` that cannot work.

    The task (``task.name``, from the registry) checks its own group and the run options it
    reads (CrossMath: ``data``, ``modalities``, ``styles``; a transfer task asks its own items
    and reads none of them).
    """
    options = OmegaConf.to_container(cfg, resolve=True)
    task = TASKS[one_of(options["task"].get("name"), "task.name", sorted(TASKS))]
    task.check(options["task"], options)
    whole_number(options["samples"], "samples")
    model_options(options["model"])
    check_resources(options["resources"])
    if options.get("out_dir") is None:  # the evaluation's folder is made under runs_dir
        writable_folder(options["runs_dir"], "runs_dir")
    else:
        writable_folder(options["out_dir"], "out_dir")
    whole_number(options["max_attempts"], "max_attempts")
    connect_timeout(options["ray"])


def check_resources(resources: Mapping[str, Any], where: str = "resources") -> None:
    for key in ("render_actors", "infer_actors"):
        whole_number(resources.get(key), f"{where}.{key}")
    whole_number(resources.get("call_sequences"), f"{where}.call_sequences",
                 none_means="the model's own batch size")
    whole_number(resources.get("call_tokens"), f"{where}.call_tokens", none_means="no token cap")
    for key in ("infer_gpus", "infer_cpus"):
        non_negative_number(resources.get(key), f"{where}.{key}")
