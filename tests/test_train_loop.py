"""The shared loop without Ray: data schedule, LoRA placement, settings, exact resume."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from crossmath.finetuning.checkpoints import ADAPTER_DIR
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.local import LocalEnv, train_locally
from crossmath.finetuning.loop import TrainJob
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.modeling import add_lora, load_base_model, load_processor_for
from crossmath.finetuning.schedule import Schedule
from crossmath.finetuning.train_settings import LoraSettings, TrainSettings


def test_schedule_covers_each_epoch_once_and_splits_it_between_workers() -> None:
    schedule = Schedule(n_examples=40, world_size=2, batch_size=3, grad_accumulation=2, epochs=2,
                        max_steps=None, seed=0)
    assert schedule.steps_per_epoch == 3 and schedule.total_steps == 6
    for epoch in range(2):
        seen: list[int] = []
        for step in range(epoch * 3, epoch * 3 + 3):
            shares = [sum(schedule.micro_batches(step, rank), []) for rank in range(2)]
            assert all(len(share) == 6 for share in shares)
            assert not set(shares[0]) & set(shares[1])
            assert all(len(mb) == 3 for rank in range(2) for mb in schedule.micro_batches(step, rank))
            seen += shares[0] + shares[1]
        assert len(set(seen)) == 36 and set(seen) <= set(range(40))
    assert schedule.micro_batches(0, 0) != schedule.micro_batches(3, 0)  # reshuffled per epoch
    assert schedule.micro_batches(4, 1) == Schedule(40, 2, 3, 2, 2, None, 0).micro_batches(4, 1)
    assert Schedule(40, 2, 3, 2, 2, max_steps=4, seed=0).total_steps == 4
    with pytest.raises(ValueError, match="cannot fill one step of 12"):
        Schedule(11, 2, 3, 2, 1, None, 0).steps_per_epoch


def test_settings_are_checked() -> None:
    settings = TrainSettings.from_mapping({"lr": 1e-3, "lora": {"rank": 8, "target_modules": ["q_proj"]}})
    assert settings.lora.rank == 8 and settings.lora.target_modules == ("q_proj",)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['learning_rate'\]"):
        TrainSettings.from_mapping({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match=r"train.lora: unknown field\(s\) \['r'\]"):
        TrainSettings.from_mapping({"lora": {"r": 8}})
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        TrainSettings(batch_size=0)
    with pytest.raises(ValueError, match="vision_tower"):
        LoraSettings(vision_tower="half")


@pytest.mark.parametrize("vision", ["frozen", "lora", "full"])
def test_lora_goes_on_the_language_model_and_the_vision_tower_only_by_config(tiny_spec, vision):
    spec = tiny_spec
    model = add_lora(load_base_model(spec, torch.float32), LoraSettings(rank=2, vision_tower=vision),
                     gradient_checkpointing=False)
    adapted = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")]
    language = [n for n in adapted if ".language_model." in n]
    assert len(language) == 2 * 7  # two layers x (q, k, v, o, gate, up, down)
    vision_adapted = [n for n in adapted if ".visual." in n]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    vision_trainable = [n for n in trainable if ".visual." in n]
    if vision == "frozen":
        assert not vision_adapted and not vision_trainable
        assert all("lora_" in n for n in trainable)
    elif vision == "lora":
        assert len(vision_adapted) == 2 * 5 and all(".blocks." in n for n in vision_adapted)
        assert all("lora_" in n for n in vision_trainable)
    else:
        assert not vision_adapted
        assert any("lora_" not in n for n in vision_trainable)  # the tower's own weights train


@pytest.mark.parametrize("vision", ["frozen", "lora", "full"])
def test_backward_runs_through_the_vision_tower_only_when_it_trains(tiny_spec, vision):
    """With checkpointing on, transformers and peft hook the embeddings' outputs to require grad;
    left in place on a VLM, backward would run through the whole frozen vision tower."""
    spec = tiny_spec
    model = add_lora(load_base_model(spec, torch.float32), LoraSettings(rank=2, vision_tower=vision),
                     gradient_checkpointing=True)
    processor = load_processor_for(spec)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "3 + 4 = ?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (112, 84), "white")], return_tensors="pt")
    tower_output: list[torch.Tensor] = []
    model.get_base_model().model.visual.register_forward_hook(
        lambda module, args, output: tower_output.append(output.pooler_output))
    model.train()
    model(**inputs, use_cache=False).logits.float().pow(2).mean().backward()
    assert tower_output[0].requires_grad == (vision != "frozen")
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    assert any(".visual." in n and g is not None for n, g in grads.items()) == (vision != "frozen")


def test_models_that_cannot_be_trained_are_refused(tiny_model_config, tiny_spec) -> None:
    with pytest.raises(ValueError, match="needs a local transformers model"):
        ModelSpec.from_backend_config({"_target_": "crossmath.models.baselines.OracleBackend",
                                       "name": "oracle"}, tiny_spec.prompt_set)
    with pytest.raises(ValueError, match="model.adapter=null"):
        ModelSpec.from_backend_config({**tiny_model_config, "adapter": "/some/adapter"},
                                      tiny_spec.prompt_set)


class CrashAfter:
    """A metrics sink that fails at a given step: a worker dying mid-run."""

    def __init__(self, step: int) -> None:
        self.step, self.steps = step, []

    def __call__(self, metrics, step) -> None:
        self.steps.append(step)
        if step == self.step:
            raise RuntimeError(f"simulated crash at step {step}")


@pytest.mark.slow
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tiny_spec, tmp_path) -> None:
    built = build_training_set(TrainingSetSpec(n_puzzles=6, seed=9, styles=("original",),
                                               modalities=("text", "image"), target="answer"),
                               tmp_path / "set")
    settings = TrainSettings(lora=LoraSettings(rank=4, dropout=0.0), lr=1e-2, batch_size=2,
                             grad_accumulation=2, epochs=3, max_steps=5, checkpoint_every=2,
                             eval_every=0, log_every=1, validation_fraction=0.0, loader_threads=1,
                             gradient_checkpointing=False)

    def job(sink) -> TrainJob:
        return TrainJob(tiny_spec, settings, built.read, sink)

    whole = CrashAfter(step=-1)
    summary = train_locally(job(whole), tmp_path / "whole")
    assert whole.steps == [1, 2, 3, 4, 5] and summary["final_step"] == 5
    assert summary["resumed_from_step"] == -1

    crash = CrashAfter(step=3)
    with pytest.raises(RuntimeError, match="simulated crash at step 3"):
        train_locally(job(crash), tmp_path / "split")
    assert [p.name for p in LocalEnv(tmp_path / "split").checkpoints()] == ["checkpoint-0000002"]
    rest = CrashAfter(step=-1)
    resumed = train_locally(job(rest), tmp_path / "split")
    assert resumed["resumed_from_step"] == 2 and rest.steps == [3, 4, 5]

    final = {name: LocalEnv(tmp_path / name).checkpoints()[-1] for name in ("whole", "split")}
    assert [p.name for p in final.values()] == ["checkpoint-0000005"] * 2
    weights = {name: load_file(folder / ADAPTER_DIR / "adapter_model.safetensors")
               for name, folder in final.items()}
    assert weights["whole"].keys() == weights["split"].keys()
    for key, value in weights["whole"].items():
        assert torch.allclose(value, weights["split"][key], atol=1e-6), key
    initial_b = [v for k, v in weights["whole"].items() if "lora_B" in k]
    assert any(v.abs().max() > 0 for v in initial_b)  # training moved the adapters off zero

    # a finished run started again trains nothing and leaves its final checkpoint alone
    stamp = (final["whole"] / ADAPTER_DIR / "adapter_model.safetensors").stat().st_mtime_ns
    again = CrashAfter(step=-1)
    assert train_locally(job(again), tmp_path / "whole")["resumed_from_step"] == 5
    assert again.steps == []
    assert (final["whole"] / ADAPTER_DIR / "adapter_model.safetensors").stat().st_mtime_ns == stamp
