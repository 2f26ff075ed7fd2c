"""cluster.yaml against Ray's own autoscaler code, and the commands the job entry points submit.

Nothing here contacts AWS or a cluster: the autoscaler's config validation and its node
bin-packing run on the file as ``ray up`` would read it.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
from functools import partial

import jsonschema
import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from crossmath.orchestration.overrides import with_defaults
from crossmath.orchestration.ray_jobs import (
    CLUSTER_MLFLOW,
    CLUSTER_STORAGE,
    CPU_NODE_RESOURCE,
    REPO_ROOT,
    chained_steps,
    python_module,
    run_defaults,
)
from crossmath.orchestration.story_plan import plan_story
from crossmath.pipeline.dataflow import StageResources
from crossmath.submit import tuned_story

CLUSTER_YAML = REPO_ROOT / "cluster.yaml"


def prepared_cluster() -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8")))
    validate_config(config)
    return config


def job_args(**changes) -> argparse.Namespace:
    return argparse.Namespace(**{"storage": CLUSTER_STORAGE, "mlflow_uri": CLUSTER_MLFLOW,
                                 "gpus": 1.0, **changes})


def compose_config(name: str, overrides: list[str]):
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        return compose(name, overrides=overrides)


def test_cluster_yaml_passes_ray_validation_with_the_node_types_the_jobs_need():
    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig

    config = prepared_cluster()
    assert config["provider"]["type"] == "aws"
    types = AutoscalingConfig(config, skip_content_hash=True).get_node_type_configs()
    head = types[config["head_node_type"]]
    assert head.resources == {"CPU": 0}
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    marked = [name for name, t in workers.items() if t.resources.get(CPU_NODE_RESOURCE)]
    with_gpus = [name for name, t in workers.items() if t.resources.get("GPU", 0) >= 1]
    assert marked == ["cpu"] and with_gpus == ["gpu"]
    for name in ("cpu", "gpu"):
        assert workers[name].min_worker_nodes == 0 < workers[name].max_worker_nodes
    assert not workers["cpu"].resources.get("GPU") and not workers["gpu"].resources.get(CPU_NODE_RESOURCE)


def test_validation_is_live_and_rejects_a_broken_config():
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))
    broken["available_node_types"]["cpu"]["resources"][CPU_NODE_RESOURCE] = 0.5  # must be an int
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_autoscaler_adds_cpu_nodes_for_render_actors_and_gpu_nodes_for_inference_actors():
    from ray.autoscaler._private.node_provider_availability_tracker import NodeAvailabilitySummary
    from ray.autoscaler._private.resource_demand_scheduler import (
        _default_utilization_scorer,
        get_nodes_for,
    )

    config = prepared_cluster()
    cfg = compose_config("run", with_defaults(run_defaults(job_args()),
                                              ["resources.render_actors=10", "resources.infer_actors=3"]))
    resources = StageResources(**OmegaConf.to_container(cfg.resources))
    render = resources.render_remote_args()
    render_demand = {"CPU": render["num_cpus"], **render["resources"]}
    infer_demand = {"CPU": resources.infer_cpus, "GPU": resources.infer_gpus}
    scorer = partial(_default_utilization_scorer, node_availability_summary=NodeAvailabilitySummary({}))

    def nodes_for(demands, running=None):
        added, unmet = get_nodes_for(config["available_node_types"],
                                     {config["head_node_type"]: 1, **(running or {})},
                                     config["head_node_type"], config["max_workers"], demands, scorer)
        return dict(added), unmet

    assert nodes_for([render_demand] * resources.render_actors) == ({"cpu": 2}, [])  # 8 CPUs each
    # with every CPU node taken, render actors wait: a GPU node's CPUs are not for them
    cpu_max = config["available_node_types"]["cpu"]["max_workers"]
    assert nodes_for([render_demand] * 3, running={"cpu": cpu_max}) == ({}, [render_demand] * 3)
    assert nodes_for([{"CPU": 1}] * 3, running={"cpu": cpu_max})[0] == {"gpu": 1}  # unmarked would
    assert nodes_for([infer_demand] * resources.infer_actors) == ({"gpu": 3}, [])
    _, unmet = nodes_for([infer_demand] * 6)  # the GPU type scales to its max, no further
    assert len(unmet) == 6 - config["available_node_types"]["gpu"]["max_workers"]


def test_cluster_nodes_export_what_the_jobs_resolve_and_the_head_runs_mlflow():
    config = prepared_cluster()
    setup = " ".join(config["setup_commands"])
    assert "CROSSMATH_STORAGE=" in setup and "pip install -q -c ~/crossmath/constraints.txt -e ~/crossmath" in setup
    for commands in (config["head_setup_commands"], config["worker_setup_commands"]):
        assert "MLFLOW_TRACKING_URI=http://" in " ".join(commands)
    head_start = " ".join(config["head_start_ray_commands"])
    assert "mlflow server" in head_start and "--backend-store-uri sqlite:" in head_start
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup mlflow server" in head_start
    assert "--artifacts-destination" in head_start and "--num-cpus=0" in head_start


def test_evaluate_job_command_composes_on_the_cluster(monkeypatch):
    monkeypatch.setenv("CROSSMATH_STORAGE", "s3://team-bucket/crossmath")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://10.0.0.5:5000")
    line = python_module("crossmath.run", with_defaults(run_defaults(job_args()),
                                                        ["model=oracle", "data.n=5",
                                                         "resources.infer_gpus=0"]))
    words = shlex.split(line)  # what the head's shell hands to python
    assert words[:3] == ["python", "-m", "crossmath.run"]
    cfg = compose_config("run", words[3:])
    assert cfg.runs_dir == "s3://team-bucket/crossmath/runs" and cfg.out_dir is None
    assert cfg.mlflow.tracking_uri == "http://10.0.0.5:5000"
    assert cfg.ray.address == "auto"
    assert cfg.resources.render_node_resource == CPU_NODE_RESOURCE
    assert cfg.resources.infer_gpus == 0  # the user's override wins over the default of 1


@pytest.mark.slow
def test_finetune_job_trains_then_evaluates_the_adapter_in_shared_storage(tmp_path, monkeypatch):
    args = job_args(model="tiny-random", baseline=False, workers=2, train=["train.max_steps=3"],
                    eval=["data.n=4"], grpo=None)
    line = chained_steps(plan_story(tuned_story(args)))
    shared = tmp_path / "efs"
    # what the head's shell runs: each step's argv as python would get it, one line per step
    printed = subprocess.run(["bash", "-c", "python() { printf '%s\\0' \"$@\"; echo; }; " + line],
                             check=True, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"}).stdout.splitlines()
    train, evaluate = (step.split("\0")[:-1] for step in printed)
    assert train[:2] == ["-m", "crossmath.train"] and evaluate[:2] == ["-m", "crossmath.run"]

    monkeypatch.setenv("CROSSMATH_STORAGE", str(shared))  # resolved by the steps, on the cluster
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://10.0.0.5:5000")
    train_cfg = compose_config("train", train[2:])
    eval_cfg = compose_config("run", evaluate[2:])
    assert train_cfg.out_dir == str(shared / "tuned" / "tiny-random" / "train")
    assert train_cfg.scaling.use_gpu is True and train_cfg.scaling.num_workers == 2
    assert train_cfg.train.max_steps == 3 and train_cfg.ray.address == "auto"
    assert eval_cfg.model.adapter == f"{train_cfg.out_dir}/adapter"
    assert eval_cfg.runs_dir == str(shared / "tuned" / "tiny-random" / "eval-lora")
    assert eval_cfg.resources.infer_gpus == 1 and eval_cfg.data.n == 4
    assert train_cfg.mlflow.tracking_uri == eval_cfg.mlflow.tracking_uri == "http://10.0.0.5:5000"
