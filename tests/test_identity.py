"""Identity: every setting that can change a prediction's text changes its id; nothing else does.

Pure functions on configs, files and puzzles: no Ray, no model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from crossmath.core import fingerprints
from crossmath.drawing.style import STYLE_DIR
from crossmath.models.config import resolved_dtype
from crossmath.models.contract import decodes_greedily
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.pipeline.evaluation import effective_samples
from crossmath.pipeline.identity import IdentityError, backend_identity
from crossmath.puzzle.records import read_official_jsonl
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.settings.checks import resolved_styles
from crossmath.tasks.crossmath.identity import data_identity, prompts_identity
from crossmath.tasks.crossmath.requests import RequestPlan

PUZZLES = generate_puzzles(2, "mixed", seed=3)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 16}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (folder / "generation_config.json").write_text('{"do_sample": true, "top_k": 20}')
    return folder


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 16}')
    (folder / "adapter_model.safetensors").write_bytes(b"\x01" * 4096)
    return folder


@pytest.fixture
def hf_config(checkpoint: Path, adapter: Path) -> dict:
    return {"_target_": "crossmath.models.hf.HFBackend", "name": "m", "model": str(checkpoint),
            "prompt": DEFAULT_PROMPT, "dtype": "auto", "attn_implementation": "sdpa_gqa",
            "device": "auto", "min_pixels": 3136, "max_pixels": 50176, "max_new_tokens": 32,
            "sampling": "config", "temperature": 1.0, "top_p": 1.0, "top_k": 0,
            "enable_thinking": None, "batch_size": 8, "adapter": str(adapter), "seed": 0,
            "generation_kwargs": {"repetition_penalty": 1.0}}


SHAPING_CHANGES = {
    "name": "other", "dtype": "bfloat16", "attn_implementation": "sdpa", "min_pixels": 6272,
    "max_pixels": 100352, "max_new_tokens": 64, "sampling": "greedy", "temperature": 0.7,
    "top_p": 0.9, "top_k": 20, "enable_thinking": False, "seed": 1,
    "generation_kwargs": {"repetition_penalty": 1.05},
    "an_option_added_later": 1,  # unknown keys count: a new option is safe by default
}


@pytest.mark.parametrize("key", sorted(SHAPING_CHANGES))
def test_every_answer_shaping_setting_changes_the_backend_identity(hf_config, key):
    changed = {**hf_config, key: SHAPING_CHANGES[key]}
    assert backend_identity(changed, 0).id != backend_identity(hf_config, 0).id


def test_settings_that_cannot_change_the_text_keep_the_identity(hf_config, adapter, tmp_path):
    base = backend_identity(hf_config, 0).id
    moved = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(adapter, moved)
    for key, value in {"batch_size": 64, "device": "cpu", "prompt": "my-prompts.yaml",
                       "adapter": str(moved)}.items():
        assert backend_identity({**hf_config, key: value}, 0).id == base, key


def test_weights_and_adapter_count_by_content(hf_config, checkpoint, adapter):
    base = backend_identity(hf_config, 0).id
    (adapter / "adapter_model.safetensors").write_bytes(b"\x02" * 4096)  # retrained in place
    retrained = backend_identity(hf_config, 0).id
    assert retrained != base
    (checkpoint / "model.safetensors").write_bytes(bytes(range(256)) * 65)
    assert backend_identity(hf_config, 0).id not in (base, retrained)
    assert backend_identity({**hf_config, "adapter": None}, 0).id != backend_identity(hf_config, 0).id


def test_auto_dtype_is_resolved_where_the_actor_runs(hf_config):
    assert resolved_dtype(hf_config, gpus=0) == "float32"
    assert resolved_dtype(hf_config, gpus=1) == "bfloat16"
    assert resolved_dtype({**hf_config, "device": "cuda:0"}, gpus=0) == "bfloat16"
    on_cpu, on_gpu = backend_identity(hf_config, 0), backend_identity(hf_config, 1)
    assert on_cpu.id != on_gpu.id and on_gpu.settings["dtype"] == "bfloat16"
    explicit = {**hf_config, "dtype": "bfloat16"}
    assert backend_identity(explicit, 0).id == backend_identity(explicit, 1).id == on_gpu.id


def test_auto_dtype_rule_is_the_hf_backends():
    import torch

    from crossmath.models.checkpoint_loading import resolve_dtype
    from crossmath.models.config import AUTO_DTYPES

    for device, name in AUTO_DTYPES.items():
        assert resolve_dtype("auto", torch.device(device)) == getattr(torch, name)


def test_nested_model_builder_counts_without_its_cache_folder(hf_config):
    def built(**builder) -> str:
        model = {"_target_": "crossmath.models.tiny.build_tiny_random", **builder}
        return backend_identity({**hf_config, "model": model}, 0).id

    assert built(cache_dir="/a") == built(cache_dir="/b") != built(cache_dir="/a", size=2)


def test_hub_models_count_by_the_cached_snapshot_revision(hf_config, tmp_path, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--org--vlm"
    for commit in ("a" * 40, "b" * 40):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    config = {**hf_config, "model": "org/vlm"}

    (repo / "refs" / "main").write_text("a" * 40)
    first = backend_identity(config, 0)
    assert first.settings["model"] == {"hub": "org/vlm", "revision": "a" * 40}
    assert first.checkpoint == repo / "snapshots" / ("a" * 40)
    (repo / "refs" / "main").write_text("b" * 40)  # a newer snapshot was downloaded
    assert backend_identity(config, 0).id != first.id

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", offline)
    with pytest.raises(IdentityError, match="org/other.*hf download org/other"):
        backend_identity({**hf_config, "model": "org/other"}, 0)


def test_large_files_are_sampled_and_still_seen_to_change(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprints, "FULL_HASH_LIMIT", 1000)
    monkeypatch.setattr(fingerprints, "CHUNK_BYTES", 100)
    path = tmp_path / "weights.bin"
    data = bytearray(range(256)) * 20  # 5120 bytes: sampled at offsets 0, 1255, 2510, 3765, 5020
    path.write_bytes(bytes(data))
    base = fingerprints.file_fingerprint(path)
    for offset in (0, 2550, 5119):
        changed = bytearray(data)
        changed[offset] ^= 0xFF
        path.write_bytes(bytes(changed))
        assert fingerprints.file_fingerprint(path) != base, offset
    path.write_bytes(bytes(data) + b"\x00")
    assert fingerprints.file_fingerprint(path) != base


def test_folder_fingerprint_ignores_location_and_dot_entries(checkpoint, tmp_path):
    base = fingerprints.folder_fingerprint(checkpoint)
    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)
    (copy / ".cache").mkdir()
    (copy / ".cache" / "lock").write_text("x")
    assert fingerprints.folder_fingerprint(copy) == base
    (copy / "config.json").rename(copy / "config2.json")
    assert fingerprints.folder_fingerprint(copy) != base


# ---------------------------------------------------------------- requests


def _ids(plan: RequestPlan, official_images: dict | None = None, puzzles=PUZZLES) -> list[str]:
    return [r["request_id"] for unit in plan.units(puzzles, official_images) for r in unit["requests"]]


def _plan(styles=("original",), **changes) -> RequestPlan:
    """A plan with ``styles`` (names or paths) resolved as the run's door resolves them."""
    fields = {"modalities": ["text", "image", "hybrid"], "styles": resolved_styles(list(styles)),
              "samples": 2, "prompt": load_prompt_template(DEFAULT_PROMPT), "backend_id": "b"}
    return RequestPlan(**{**fields, **changes})


def test_request_ids_follow_the_content_of_each_request(tmp_path):
    base = _ids(_plan())
    assert base == _ids(_plan()) and len(set(base)) == len(base) == 2 * (1 + 2) * 2
    assert set(base).isdisjoint(_ids(_plan(backend_id="c")))

    source = Path(load_prompt_template(DEFAULT_PROMPT).source)
    prompts = yaml.safe_load(source.read_text(encoding="utf-8"))
    prompts["rules"] = prompts["rules"].replace("Every equation", "Each equation")  # same id
    edited = tmp_path / "prompts.yaml"
    edited.write_text(yaml.safe_dump(prompts, allow_unicode=True), encoding="utf-8")
    assert set(base).isdisjoint(_ids(_plan(prompt=load_prompt_template(edited))))

    style_file = tmp_path / "mine.yaml"
    style = yaml.safe_load((STYLE_DIR / "original.yaml").read_text())
    style_file.write_text(yaml.safe_dump(style))
    first = _ids(_plan(styles=[str(style_file)]))
    style_file.write_text(yaml.safe_dump(style) + "# a comment changes no pixel\n")
    assert _ids(_plan(styles=[str(style_file)])) == first
    style["number_color"] = [200, 232, 245]
    style_file.write_text(yaml.safe_dump(style))
    text_ids = set(_ids(_plan(modalities=["text"])))
    recoloured = set(_ids(_plan(styles=[str(style_file)])))
    assert recoloured & set(first) == text_ids  # new pixels: every image request is new


def test_release_images_count_by_their_bytes(official_jsonl, tmp_path):
    puzzles = [read_official_jsonl(official_jsonl)[0].to_puzzle()]
    image = tmp_path / "blank.png"
    image.write_bytes(b"\x89PNG first")
    plan = _plan(modalities=["image"], samples=1)
    first = _ids(plan, {(puzzles[0].name, "original"): image}, puzzles)
    assert first != _ids(plan, {}, puzzles)  # the release's image is not our rendering
    image.write_bytes(b"\x89PNG repaired")
    assert _ids(plan, {(puzzles[0].name, "original"): image}, puzzles) != first


def test_data_and_prompts_identities():
    data = data_identity(PUZZLES)
    assert data_identity(list(PUZZLES)) == data != data_identity(PUZZLES[:1])
    assert data_identity(PUZZLES[::-1]) != data  # the order of puzzles is part of the data
    texts = [("a", "grid"), ("b",)]
    assert prompts_identity(texts) == prompts_identity(texts[::-1] + texts)
    assert prompts_identity(texts) != prompts_identity([("a", "grid"), ("c",)])


# ---------------------------------------------------------------- greedy decoding and samples


HF = {"_target_": "crossmath.models.hf.HFBackend"}
VLLM = {"_target_": "crossmath.models.vllm_backend.VLLMBackend"}
OPENAI = {"_target_": "crossmath.models.openai_backend.OpenAIChatBackend"}


@pytest.mark.parametrize("config, generation, greedy", [
    ({**HF, "sampling": "greedy"}, None, True),
    ({**HF, "sampling": "config", "temperature": 1.0}, None, False),
    ({**HF, "sampling": "checkpoint"}, None, False),
    ({**HF, "sampling": "checkpoint"}, {"do_sample": True, "top_k": 1}, True),  # Qwen2.5-VL's
    ({**HF, "sampling": "checkpoint"}, {"do_sample": False}, True),
    ({**HF, "sampling": "checkpoint"}, {"do_sample": True, "top_k": 20}, False),
    ({**VLLM, "sampling": "greedy"}, None, True),
    ({**VLLM, "sampling": "checkpoint"}, {"do_sample": True, "top_k": 20}, False),
    (HF, None, True),  # sampling left out: the constructor's default, greedy
    ({**OPENAI, "temperature": 0.0}, None, True),  # an OpenAI-compatible server
    ({**OPENAI, "temperature": 0.6}, None, False),
    ({"_target_": "crossmath.models.baselines.OracleBackend"}, None, True),
    ({"_target_": "crossmath.models.baselines.RandomBackend"}, None, False),
    ({"_target_": "tests.doubles.SlowBackend"}, None, True),  # an oracle still
])
def test_decodes_greedily(config, generation, greedy):
    assert decodes_greedily(config, generation) is greedy


def test_greedy_models_run_one_sample_with_a_warning(checkpoint, caplog):
    assert effective_samples(4, {**HF, "name": "m", "sampling": "greedy"}, None) == 1
    assert "decodes greedily" in caplog.text
    sampled = {**HF, "name": "m", "sampling": "checkpoint"}
    assert effective_samples(4, sampled, checkpoint) == 4  # its config samples, top_k 20
    (checkpoint / "generation_config.json").write_text(json.dumps({"do_sample": True, "top_k": 1}))
    assert effective_samples(4, sampled, checkpoint) == 1
    assert effective_samples(1, {**HF, "name": "m", "sampling": "greedy"}, None) == 1
