"""Rollouts on the tiny model: the evaluation's prompts, decoded by the evaluation's own loop
(``Decoder``) exactly as a plain ``generate`` reference decodes them, one prefill per prompt,
keyed sampling independent of batching, the policy's adapters active, stop and truncation, no
multimodal placeholder in a completion."""

from __future__ import annotations

import pytest
import torch

from crossmath.finetuning.collate import EncodedExample, ExampleEncoder, collate
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.modeling import add_lora, load_base_model
from crossmath.finetuning.rollouts import (
    Rollout,
    RolloutGenerator,
    placeholder_token_ids,
    rollout_identity,
)
from crossmath.finetuning.train_settings import LoraSettings
from crossmath.models.checkpoint_loading import stop_token_ids
from crossmath.models.sampling import SeededSampler, sequence_keys
from crossmath.models.sampling_settings import SamplingSettings

CPU = torch.device("cpu")
SEED = 7
SAMPLED = SamplingSettings(temperature=1.0)
TRUNCATED_NUCLEUS = SamplingSettings(temperature=0.7, top_k=20, top_p=0.9)


@pytest.fixture(scope="module")
def model(tiny_spec: ModelSpec) -> torch.nn.Module:
    return load_base_model(tiny_spec, torch.float32).eval()


@pytest.fixture(scope="module")
def policy(tiny_spec: ModelSpec) -> torch.nn.Module:
    """The tiny model with LoRA adapters moved off zero (as after some training), in eval mode."""
    torch.manual_seed(0)
    adapted = add_lora(load_base_model(tiny_spec, torch.float32),
                       LoraSettings(rank=4, dropout=0.0, extra_target_modules=("lm_head",)),
                       gradient_checkpointing=True)
    for module in adapted.modules():
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.5)
    return adapted.eval()


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Two puzzles of different sizes, each as a text and as an image prompt."""
    built = build_training_set(TrainingSetSpec(n_puzzles=2, seed=4, styles=("original",),
                                               modalities=("text", "image"), target="answer"),
                               tmp_path_factory.mktemp("grpo-rollouts") / "set")
    return sorted(built.read().to_pylist(), key=lambda row: row["example_id"])


@pytest.fixture(scope="module")
def prompts(tiny_encoder: ExampleEncoder, rows: list[dict]) -> list[EncodedExample]:
    return [tiny_encoder.encode_prompt_example(row) for row in rows]


def _generator(tiny_encoder: ExampleEncoder, batch_size: int, max_new_tokens: int = 6,
               sampling: SamplingSettings | None = SAMPLED) -> RolloutGenerator:
    return RolloutGenerator(tiny_encoder.tokenizer, samples=3, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, sampling=sampling, seed=SEED)


def reference_rollouts(model: torch.nn.Module, tokenizer, prompts: list[EncodedExample], step: int,
                       samples: int, max_new_tokens: int,
                       sampling: SamplingSettings | None) -> list[Rollout]:
    """Each completion on its own: one ``generate`` call per (prompt, sample), greedy decoding with
    the sample's ``SeededSampler`` on top, placeholders suppressed, cut at the first stop token."""
    stops = stop_token_ids(model, tokenizer)
    made = []
    for index, prompt in enumerate(prompts):
        inputs = collate([prompt], tokenizer.pad_token_id, padding_side="left")
        length = inputs["input_ids"].shape[1]
        for sample in range(samples):
            keys = sequence_keys(SEED, [rollout_identity(step, prompt.example_id, sample)])
            processors = [] if sampling is None else [SeededSampler(keys, length, sampling)]
            generated = model.generate(
                **inputs, do_sample=False, max_new_tokens=max_new_tokens, use_cache=True,
                logits_processor=processors, eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id, suppress_tokens=placeholder_token_ids(model),
                repetition_penalty=1.0, top_k=None,
            )[0, length:].tolist()
            end = next((i + 1 for i, token in enumerate(generated) if token in stops), None)
            kept = generated if end is None else generated[:end]
            made.append(Rollout(index, sample, tuple(kept),
                                tokenizer.decode(kept, skip_special_tokens=True), end is None))
    return made


def test_rollout_prompts_are_the_training_prompts(tiny_encoder, rows) -> None:
    """The prompt part of an SFT example, which tests/test_train_collate.py pins to the tokens
    the evaluation's backend generates from."""
    for row in rows:
        prompt, example = tiny_encoder.encode_prompt_example(row), tiny_encoder.encode(row)
        assert prompt.n_prompt_tokens == example.n_prompt_tokens
        for key, value in prompt.tokens.items():
            assert torch.equal(value, example.tokens[key][:prompt.n_prompt_tokens]), key
        assert prompt.images.keys() == example.images.keys()


@pytest.mark.slow
@pytest.mark.parametrize("sampling", [None, SAMPLED, TRUNCATED_NUCLEUS],
                         ids=["greedy", "sampled", "top-k-top-p"])
def test_rollouts_are_what_generate_decodes(tiny_encoder, policy, prompts, sampling) -> None:
    """The policy with its adapters (fp32, CPU), text and image prompts of different lengths in
    one left-padded decode, against one plain ``generate`` call per completion."""
    generator = _generator(tiny_encoder, batch_size=12, sampling=sampling)
    rollouts = generator.generate(policy, prompts, step=2, device=CPU)
    expected = reference_rollouts(policy, tiny_encoder.tokenizer, prompts, 2, 3, 6, sampling)
    assert rollouts == expected
    if sampling is not None:
        assert len({r.token_ids for r in rollouts if r.prompt_index == 0}) > 1


@pytest.mark.slow
def test_the_samples_of_a_prompt_share_its_prefill(tiny_encoder, model, prompts) -> None:
    """Four prompts x 3 samples in one decode prefill 4 prompts; one row per decode prefills
    each sample's prompt on its own; the completions are the same."""
    shared = _generator(tiny_encoder, batch_size=12)
    together = shared.generate(model, prompts, step=3, device=CPU)
    assert [(s.prompts, s.rows) for s in shared.last_stats] == [(4, 12)]
    separate = _generator(tiny_encoder, batch_size=1)
    alone = separate.generate(model, prompts, step=3, device=CPU)
    assert [(s.prompts, s.rows) for s in separate.last_stats] == [(1, 1)] * 12
    assert alone == together


@pytest.mark.slow
def test_completions_depend_on_their_key_not_on_the_batch(tiny_encoder, model, prompts) -> None:
    together = _generator(tiny_encoder, batch_size=12).generate(model, prompts, step=3, device=CPU)
    order = [(r.prompt_index, r.sample) for r in together]
    assert order == [(i, s) for i in range(4) for s in range(3)]
    by_key = {(r.prompt_index, r.sample): r.token_ids for r in together}
    split = _generator(tiny_encoder, batch_size=5)  # a prompt's samples straddle two decodes
    other_order = split.generate(model, prompts[::-1], 3, CPU)
    assert [(s.prompts, s.rows) for s in split.last_stats] == [(2, 5), (3, 5), (1, 2)]
    assert all(r.token_ids == by_key[(3 - r.prompt_index, r.sample)] for r in other_order)
    next_step = _generator(tiny_encoder, batch_size=12).generate(model, prompts, step=4, device=CPU)
    assert [r.token_ids for r in next_step] != [r.token_ids for r in together]
    samples = [r.token_ids for r in together if r.prompt_index == 0]
    assert len(set(samples)) == 3  # the samples of one prompt are different draws


def test_the_policy_decodes_with_its_adapters(tiny_encoder, model, policy, prompts) -> None:
    """A non-zero adapter changes the completions; with the adapter disabled they are the base
    model's."""
    generator = _generator(tiny_encoder, batch_size=12)
    base = generator.generate(model, prompts, step=0, device=CPU)
    adapted = generator.generate(policy, prompts, step=0, device=CPU)
    assert [r.token_ids for r in adapted] != [r.token_ids for r in base]
    with policy.disable_adapter():
        disabled = generator.generate(policy, prompts, step=0, device=CPU)
    assert disabled == base
    assert generator.generate(policy, prompts, step=0, device=CPU) == adapted  # back on


def test_a_completion_ends_at_its_first_stop_token_or_is_truncated(tiny_encoder, model, prompts) -> None:
    cut = _generator(tiny_encoder, batch_size=6, max_new_tokens=5).generate(model, prompts[:2], 0, CPU)
    stops = stop_token_ids(model, tiny_encoder.tokenizer)
    for rollout in cut:
        assert rollout.truncated == (not any(t in stops for t in rollout.token_ids))
        assert len(rollout.token_ids) == 5 if rollout.truncated else rollout.token_ids[-1] in stops
        assert tiny_encoder.tokenizer.decode(rollout.token_ids, skip_special_tokens=True) == rollout.text
    assert any(r.truncated for r in cut)

    configured = model.generation_config.eos_token_id
    placeholders = set(placeholder_token_ids(model))
    model.generation_config.eos_token_id = [i for i in range(len(tiny_encoder.tokenizer))
                                            if i not in placeholders]  # every token stops
    try:
        stopped = _generator(tiny_encoder, batch_size=6, max_new_tokens=5).generate(
            model, prompts[:2], 0, CPU)
    finally:
        model.generation_config.eos_token_id = configured
    assert all(len(r.token_ids) == 1 and not r.truncated for r in stopped)


def test_multimodal_placeholders_are_never_sampled(tiny_encoder, model, prompts) -> None:
    config = model.config
    placeholders = placeholder_token_ids(model)
    assert placeholders == [config.image_token_id, config.video_token_id, config.vision_start_token_id]

    def favour_placeholders(module, args, logits):
        logits[..., placeholders] += 100.0  # without suppression, every token would be one
        return logits

    handle = model.get_output_embeddings().register_forward_hook(favour_placeholders)
    try:
        rollouts = _generator(tiny_encoder, batch_size=12).generate(model, prompts, 0, CPU)
    finally:
        handle.remove()
    assert not any(set(r.token_ids) & set(placeholders) for r in rollouts)
