"""Backends declare their contract (``crossmath.models.contract``): the pipeline reads call
capacity, greedy decoding, non-shaping options and the weights' identity from the backend
class, so a backend added outside the library (a class here and a YAML in a temporary config
folder) runs the main job with no change to the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from crossmath.core.errors import UserError
from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.call_log import append_call, read_call_log
from crossmath.models.contract import BackendContract, BackendSpec, decodes_greedily
from crossmath.models.weights import WeightsIdentity
from crossmath.pipeline.calls import RULE_BASED_CALL, model_capacity, streams_answers
from crossmath.pipeline.evaluation import plan_evaluation, run_evaluation
from crossmath.pipeline.identity import backend_identity
from tests.conftest import REPO_ROOT

# As the inference actors import it (pytest may import this file under another name).
HERE = "tests.test_backend_contract"
SHIPPED_MODELS = sorted(path.stem for path in (REPO_ROOT / "conf" / "model").glob("*.yaml"))


@dataclass(frozen=True)
class Revision:
    """Weights known by a revision number in the ``revision`` argument: it shapes answers."""

    def identity(self, arguments: Mapping[str, Any]) -> WeightsIdentity:
        return WeightsIdentity({"weights": f"echo-weights-r{arguments.get('revision', 1)}"})


def _greedy_when_cold(arguments: Mapping[str, Any],
                      checkpoint_generation: Mapping[str, Any] | None = None) -> bool:
    return arguments.get("warmth", 0) == 0


class EchoBackend:
    """A backend unknown to the library: it says the first number of each prompt, calls of
    ``per_call`` sequences (``log``: one line per call), greedy unless ``warmth`` is set."""

    contract = BackendContract(
        call_sequences="per_call", answer_tokens="answer_words",
        non_shaping=frozenset({"per_call", "log"}), weights=Revision(), greedy=_greedy_when_cold)

    def __init__(self, name: str = "echo", per_call: int = 4, answer_words: int = 8,
                 warmth: float = 0, revision: int = 1, log: str | None = None) -> None:
        self.name, self.per_call, self.log = name, per_call, log

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        if self.log:
            append_call(self.log, 0.0, requests=len(requests), sequences=len(requests))
        return [ModelResponse(request.request_id, "I see " + request.prompt.texts[0][:20], 1, 3)
                for request in requests]


class Undeclared:
    """A backend class that forgot its contract."""


def echo_yaml(folder: Path) -> Path:
    """``conf/model/echo.yaml`` of a config folder outside the repository."""
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "echo.yaml").write_text(
        f"_target_: {HERE}.EchoBackend\n"
        "name: echo\n"
        "prompt: crossmath-v1\n"
        "per_call: 4\n"
        "answer_words: 8\n"
        "warmth: 0\n"
        "revision: 1\n"
        "log: null\n", encoding="utf-8")
    return folder


@pytest.fixture
def echo_run(run_config, tmp_path):
    """``run_config`` that also finds ``model=echo`` (a YAML in a temporary config folder)."""
    folder = echo_yaml(tmp_path / "extra-conf")

    def compose_run(*overrides: str):
        return run_config(f"hydra.searchpath=[file://{folder}]", "model=echo", *overrides)

    return compose_run


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_every_shipped_model_names_a_backend_that_declares_its_contract(name):
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        config = OmegaConf.to_container(compose("run", overrides=[f"model={name}"]).model)
    spec = BackendSpec.of(config)
    assert isinstance(spec.contract, BackendContract)
    for option in (spec.contract.call_sequences, spec.contract.answer_tokens,
                   *(spec.contract.image_pixels or ())):
        if option is not None:  # the contract names options the backend is built with
            assert option in config or option in spec.defaults, (name, option)


def test_a_backend_without_a_contract_or_class_is_named_in_the_error():
    with pytest.raises(ValueError, match="Undeclared declares no contract"):
        BackendSpec.of({"_target_": f"{HERE}.Undeclared"})
    with pytest.raises(ValueError, match="has no class 'Missing'"):
        BackendSpec.of({"_target_": f"{HERE}.Missing"})
    with pytest.raises(ValueError, match="no module named 'no_such'"):
        BackendSpec.of({"_target_": "no_such.Backend"})


def test_the_pipeline_reads_the_contract_not_the_config_keys():
    config = {"_target_": f"{HERE}.EchoBackend", "name": "echo", "per_call": 3,
              "batch_size": 64, "max_concurrency": 9}  # other backends' keys mean nothing here
    capacity = model_capacity(config)
    assert (capacity.sequences, capacity.new_tokens) == (3, 8)  # answer_words: its default
    assert model_capacity({"_target_": "crossmath.models.baselines.OracleBackend",
                           "batch_size": 5}).sequences == RULE_BASED_CALL
    assert not streams_answers(config)
    assert decodes_greedily(config) and not decodes_greedily({**config, "warmth": 0.5})


def test_identity_follows_the_contract():
    config = {"_target_": f"{HERE}.EchoBackend", "name": "echo", "per_call": 3,
              "prompt": "crossmath-v1"}
    base = backend_identity(config, 0)
    assert base.settings["weights"] == "echo-weights-r1"  # what its weights source adds
    for key, value in {"per_call": 64, "log": "/tmp/calls.jsonl", "prompt": "release"}.items():
        assert backend_identity({**config, key: value}, 0).id == base.id, key
    # batch_size is the hf backend's non-shaping key, not this backend's: here it counts.
    for key, value in {"revision": 2, "answer_words": 9, "batch_size": 64}.items():
        assert backend_identity({**config, key: value}, 0).id != base.id, key


def test_a_backend_added_outside_the_library_is_planned_from_its_contract(echo_run):
    planned = plan_evaluation(echo_run("data.n=2", "samples=4"))
    assert planned.samples == 1  # greedy, as its contract says
    assert planned.backend.settings["weights"] == "echo-weights-r1"
    same = plan_evaluation(echo_run("data.n=2", "samples=4", "model.per_call=1"))
    assert same.evaluation_id == planned.evaluation_id
    sampled = plan_evaluation(echo_run("data.n=2", "samples=4", "model.warmth=1"))
    assert sampled.samples == 4 and sampled.evaluation_id != planned.evaluation_id
    retrained = plan_evaluation(echo_run("data.n=2", "samples=4", "model.revision=2"))
    assert retrained.evaluation_id != planned.evaluation_id


def test_a_backend_without_a_contract_stops_at_the_door(echo_run):
    with pytest.raises(UserError, match=r"model\._target_: .*Undeclared declares no contract"):
        plan_evaluation(echo_run(f"model._target_={HERE}.Undeclared"))


@pytest.mark.slow
def test_a_backend_added_outside_the_library_runs_the_main_job(ray_local, echo_run, tmp_path):
    log = tmp_path / "calls.jsonl"
    outcome = run_evaluation(echo_run("data.n=3", "styles=[original]", f"model.log={log}"))
    # 3 puzzles x (text, image, hybrid), one sample each (greedy), 4 sequences a call.
    assert outcome.complete and outcome.n_requests == outcome.n_run_now == 9
    assert sorted(call["sequences"] for call in read_call_log(log)) == [1, 4, 4]
    assert set(outcome.predictions.column("model").to_pylist()) == {"echo"}
    assert all(text.startswith("I see ")
               for text in outcome.predictions.column("output").to_pylist())
