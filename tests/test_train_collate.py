"""Training inputs on the tiny model: evaluation's exact prompt tokens, loss on the target only."""

from __future__ import annotations

import hydra
import pytest
import torch

from crossmath.finetuning.collate import IGNORE_INDEX, collate
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.modeling import add_lora, load_base_model
from crossmath.finetuning.sft_step import summed_target_loss
from crossmath.finetuning.train_settings import LoraSettings
from crossmath.models.config import backend_arguments
from crossmath.models.prompts import load_prompt_template, puzzle_request


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Two puzzles of different sizes, in every modality, with the rationale target."""
    built = build_training_set(TrainingSetSpec(n_puzzles=2, seed=5, styles=("original",)),
                               tmp_path_factory.mktemp("train-set") / "set")
    return sorted(built.read().to_pylist(), key=lambda r: (r["puzzle_id"], r["modality"]))


def test_prompt_tokens_are_exactly_what_the_backend_generates_from(tiny_model_config, tiny_encoder, rows) -> None:
    """The backend's first logits call sees its prompt ids; training must use the same ones."""
    seen: list[torch.Tensor] = []

    class Capture:
        def __call__(self, input_ids, scores):
            if not seen:
                seen.append(input_ids[0].clone())
            return scores

    backend = hydra.utils.instantiate(
        {**backend_arguments(tiny_model_config), "max_new_tokens": 1, "batch_size": 1},
        logits_processor_factory=lambda: [Capture()])
    template = load_prompt_template(tiny_model_config["prompt"])
    for row in rows:
        seen.clear()
        image = None if row["modality"] == "text" else row["image"]
        backend.generate([puzzle_request(row["example_id"], row["modality"], row["grid"],
                                         image=image, template=template, n_blanks=row["n_blanks"],
                                         value_range=tuple(row["value_range"]))])
        example = tiny_encoder.encode(row)
        assert torch.equal(example.tokens["input_ids"][:example.n_prompt_tokens], seen[0]), row["modality"]


def test_labels_cover_the_target_and_end_of_turn_only(tiny_encoder, rows) -> None:
    tokenizer = tiny_encoder.tokenizer
    for row in rows:
        example = tiny_encoder.encode(row)
        labels, ids = example.tokens["labels"], example.tokens["input_ids"]
        assert (labels[:example.n_prompt_tokens] == IGNORE_INDEX).all()
        target = labels[example.n_prompt_tokens:]
        assert torch.equal(target, ids[example.n_prompt_tokens:])
        assert tokenizer.decode(target) == row["target"] + tokenizer.eos_token
        assert example.tokens["attention_mask"].all()
        assert set(example.tokens) >= {"input_ids", "attention_mask", "labels"}
        assert all(t.shape == ids.shape for t in example.tokens.values())
        assert ("pixel_values" in example.images) == (row["modality"] != "text")


def test_collate_pads_right_and_keeps_image_order(tiny_encoder, rows) -> None:
    examples = [tiny_encoder.encode(row) for row in rows]
    batch = collate(examples, pad_token_id=tiny_encoder.tokenizer.pad_token_id)
    lengths = [e.length for e in examples]
    assert len(set(lengths)) > 1
    assert batch["input_ids"].shape == (len(rows), max(lengths))
    for i, example in enumerate(examples):
        n = example.length
        assert torch.equal(batch["input_ids"][i, :n], example.tokens["input_ids"])
        assert (batch["input_ids"][i, n:] == tiny_encoder.tokenizer.pad_token_id).all()
        assert (batch["labels"][i, n:] == IGNORE_INDEX).all() and not batch["attention_mask"][i, n:].any()
    with_images = [e for e in examples if e.images]
    assert torch.equal(batch["pixel_values"], torch.cat([e.images["pixel_values"] for e in with_images]))
    assert batch["image_grid_thw"].shape == (len(with_images), 3)
    with pytest.raises(ValueError, match="empty batch"):
        collate([], 0)


@pytest.mark.slow
def test_loss_on_kept_positions_equals_the_full_logits_loss(tiny_spec, tiny_encoder, rows) -> None:
    """Projecting only the positions that predict a target must not change the loss or grads."""
    torch.manual_seed(0)
    model = add_lora(load_base_model(tiny_spec, torch.float32), LoraSettings(rank=4, dropout=0.0),
                     gradient_checkpointing=False)
    for module in model.modules():  # non-zero adapters, so their gradients are informative
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.1)
    batch = collate([tiny_encoder.encode(row) for row in rows], tiny_encoder.tokenizer.pad_token_id)
    kept = summed_target_loss(model, batch)
    kept.backward()
    kept_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1]
    full = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum")
    full.backward()
    assert torch.allclose(kept, full, rtol=1e-5)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            # float32 sums in another order differ in the last bits: tolerance relative to the
            # tensor's own scale (a wrong position would be off by the scale itself)
            scale = float(parameter.grad.abs().max())
            assert torch.allclose(kept_grads[name], parameter.grad, rtol=1e-4, atol=1e-5 * scale), name
    assert all("lora_" in name for name in kept_grads)
