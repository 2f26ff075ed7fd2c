"""Rollouts on the tiny model: the evaluation's prompts, keyed sampling independent of batching,
stop and truncation, no multimodal placeholder in a completion."""

from __future__ import annotations

import pytest
import torch

from crossmath.finetuning.collate import ExampleEncoder
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.modeling import ModelSpec, load_base_model, load_processor_for
from crossmath.finetuning.rollouts import RolloutGenerator, placeholder_token_ids, stop_token_ids
from crossmath.models.sampling import SamplingSettings

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def encoder(tiny_model_config: dict) -> ExampleEncoder:
    spec = ModelSpec.from_backend_config(tiny_model_config)
    return ExampleEncoder(load_processor_for(spec), spec)


@pytest.fixture(scope="module")
def model(tiny_model_config: dict) -> torch.nn.Module:
    return load_base_model(ModelSpec.from_backend_config(tiny_model_config), torch.float32).eval()


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Two puzzles of different sizes, each as a text and as an image prompt."""
    built = build_training_set(TrainingSetSpec(n_puzzles=2, seed=4, styles=("original",),
                                               modalities=("text", "image"), target="answer"),
                               tmp_path_factory.mktemp("grpo-rollouts") / "set")
    return sorted(built.read().to_pylist(), key=lambda row: row["example_id"])


def _generator(encoder: ExampleEncoder, batch_size: int, max_new_tokens: int = 6) -> RolloutGenerator:
    return RolloutGenerator(encoder.tokenizer, samples=3, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, sampling=SamplingSettings(temperature=1.0), seed=7)


def test_rollout_prompts_are_the_training_prompts(encoder, rows) -> None:
    """The prompt part of an SFT example, which tests/test_train_collate.py pins to the tokens
    the evaluation's backend generates from."""
    for row in rows:
        prompt, example = encoder.encode_prompt_example(row), encoder.encode(row)
        assert prompt.n_prompt_tokens == example.n_prompt_tokens
        for key, value in prompt.tokens.items():
            assert torch.equal(value, example.tokens[key][:prompt.n_prompt_tokens]), key
        assert prompt.images.keys() == example.images.keys()


def test_completions_depend_on_their_key_not_on_the_batch(encoder, model, rows) -> None:
    prompts = [encoder.encode_prompt_example(row) for row in rows]
    alone = _generator(encoder, batch_size=1).generate(model, prompts, step=3, device=CPU)
    together = _generator(encoder, batch_size=12).generate(model, prompts, step=3, device=CPU)
    assert [(r.prompt_index, r.sample) for r in alone] == [(i, s) for i in range(4) for s in range(3)]
    assert [r.token_ids for r in alone] == [r.token_ids for r in together]
    by_key = {(r.prompt_index, r.sample): r.token_ids for r in together}
    other_order = _generator(encoder, batch_size=5).generate(model, prompts[::-1], 3, CPU)
    assert all(r.token_ids == by_key[(3 - r.prompt_index, r.sample)] for r in other_order)
    next_step = _generator(encoder, batch_size=12).generate(model, prompts, step=4, device=CPU)
    assert [r.token_ids for r in next_step] != [r.token_ids for r in together]
    samples = [r.token_ids for r in together if r.prompt_index == 0]
    assert len(set(samples)) == 3  # the samples of one prompt are different draws


def test_a_completion_ends_at_its_first_stop_token_or_is_truncated(encoder, model, rows) -> None:
    prompts = [encoder.encode_prompt_example(row) for row in rows[:2]]
    cut = _generator(encoder, batch_size=6, max_new_tokens=5).generate(model, prompts, 0, CPU)
    stops = stop_token_ids(model, encoder.tokenizer)
    for rollout in cut:
        assert rollout.truncated == (not any(t in stops for t in rollout.token_ids))
        assert len(rollout.token_ids) == 5 if rollout.truncated else rollout.token_ids[-1] in stops
        assert encoder.tokenizer.decode(rollout.token_ids, skip_special_tokens=True) == rollout.text
    assert any(r.truncated for r in cut)

    configured = model.generation_config.eos_token_id
    placeholders = set(placeholder_token_ids(model))
    model.generation_config.eos_token_id = [i for i in range(len(encoder.tokenizer))
                                            if i not in placeholders]  # every token stops
    try:
        stopped = _generator(encoder, batch_size=6, max_new_tokens=5).generate(model, prompts, 0, CPU)
    finally:
        model.generation_config.eos_token_id = configured
    assert all(len(r.token_ids) == 1 and not r.truncated for r in stopped)


def test_multimodal_placeholders_are_never_sampled(encoder, model, rows) -> None:
    config = model.config
    placeholders = placeholder_token_ids(model)
    assert placeholders == [config.image_token_id, config.video_token_id, config.vision_start_token_id]

    def favour_placeholders(module, args, logits):
        logits[..., placeholders] += 100.0  # without suppression, every token would be one
        return logits

    handle = model.get_output_embeddings().register_forward_hook(favour_placeholders)
    try:
        rollouts = _generator(encoder, batch_size=12).generate(
            model, [encoder.encode_prompt_example(row) for row in rows], 0, CPU)
    finally:
        handle.remove()
    assert not any(set(r.token_ids) & set(placeholders) for r in rollouts)
