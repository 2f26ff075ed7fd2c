"""GRPO's maths against hand-computed values, and the update against a straightforward reference.

The reference recomputes every completion on its own (no padding, no batching, full logits,
a Python loop over tokens) and must agree with ``policy_update`` on the loss and on the
gradients of both optimizer steps of a two-epoch update, where the second step's ratio is no
longer 1 and the clip acts.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from crossmath.finetuning.collate import ExampleEncoder, with_reply
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.grpo import policy_update, update_batches
from crossmath.finetuning.grpo_settings import GrpoSettings
from crossmath.finetuning.local import LocalEnv
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.modeling import Precision, add_lora, load_base_model
from crossmath.finetuning.objective import group_advantages, grpo_token_loss, k3_kl
from crossmath.finetuning.policy_passes import (
    PromptVision,
    load_reference_adapter,
    train_without_dropout,
)
from crossmath.finetuning.train_settings import LoraSettings


def test_advantages_are_normalised_within_each_group_with_the_sample_std() -> None:
    groups = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0],
                                            [0.5, 0.5, 0.5, 0.5],
                                            [1.0, 0.0, 0.5, 0.5]]))
    root3_2 = math.sqrt(3) / 2  # 0.5 / sqrt(1/3)
    root6_2 = math.sqrt(6) / 2  # 0.5 / sqrt(1/6)
    expected = torch.tensor([[root3_2, -root3_2, -root3_2, root3_2],
                             [0.0, 0.0, 0.0, 0.0],
                             [root6_2, -root6_2, 0.0, 0.0]])
    assert torch.allclose(groups.advantages, expected, atol=1e-6)
    assert groups.zero_variance.tolist() == [False, True, False]


def test_left_out_completions_leave_the_group_statistics() -> None:
    rewards = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.3, 0.9, 0.2, 0.1]])
    included = torch.tensor([[True, True, False, False], [True, False, False, False]])
    groups = group_advantages(rewards, included)
    half = 0.5 / math.sqrt(0.5)  # mean 0.5, sample std sqrt(0.5) over {1, 0}
    assert torch.allclose(groups.advantages, torch.tensor([[half, -half, 0.0, 0.0], [0.0] * 4]))
    assert groups.zero_variance.tolist() == [False, True]  # one completion left: no signal


def test_the_clipped_objective_takes_the_pessimistic_branch() -> None:
    half, quarter = math.log(0.5), math.log(0.25)
    # ratio 2, 2, 0.5, 0.5 against advantages +1, -1, +1, -1; clip to [0.8, 1.2]
    logp = torch.tensor([half, half, quarter, quarter])
    old = torch.tensor([quarter, quarter, half, half])
    terms = grpo_token_loss(logp, old, torch.tensor([1.0, -1.0, 1.0, -1.0]), clip_low=0.2, clip_high=0.2)
    assert torch.allclose(terms.loss, torch.tensor([-1.2, 2.0, -0.5, 0.8]))
    assert terms.clipped.tolist() == [True, False, False, True]
    assert terms.kl.tolist() == [0.0] * 4  # no reference given
    asymmetric = grpo_token_loss(logp, old, torch.ones(4), clip_low=0.2, clip_high=0.5)
    assert torch.allclose(asymmetric.loss, torch.tensor([-1.5, -1.5, -0.5, -0.5]))
    same = grpo_token_loss(logp, logp, torch.tensor([2.0, -1.0, 0.5, 0.0]), clip_low=0.2, clip_high=0.2)
    assert torch.allclose(same.loss, torch.tensor([-2.0, 1.0, -0.5, 0.0]))  # ratio 1: -A
    assert not same.clipped.any()


def test_the_kl_term_is_k3_and_enters_the_loss_with_beta() -> None:
    logp, ref = torch.tensor([math.log(0.5), -1.0]), torch.tensor([math.log(0.25), -1.0])
    assert torch.allclose(k3_kl(logp, ref), torch.tensor([0.5 + math.log(2) - 1, 0.0]))
    terms = grpo_token_loss(logp, logp, torch.zeros(2), clip_low=0.2, clip_high=0.2, ref_logp=ref,
                            kl_beta=0.1)
    assert torch.allclose(terms.loss, 0.1 * k3_kl(logp, ref))
    measured = grpo_token_loss(logp, logp, torch.zeros(2), clip_low=0.2, clip_high=0.2, ref_logp=ref)
    assert torch.equal(measured.loss, torch.zeros(2)) and torch.equal(measured.kl, k3_kl(logp, ref))


# --------------------------------------------------------------------------------------------
# the update on the tiny model


@pytest.fixture(scope="module")
def prompts(tiny_encoder: ExampleEncoder, tmp_path_factory: pytest.TempPathFactory) -> list:
    """One puzzle as a text prompt and as an image prompt."""
    built = build_training_set(TrainingSetSpec(n_puzzles=1, seed=3, styles=("original",),
                                               modalities=("text", "image"), target="answer"),
                               tmp_path_factory.mktemp("grpo-objective") / "set")
    rows = sorted(built.read().to_pylist(), key=lambda row: row["modality"])
    return [tiny_encoder.encode_prompt_example(row) for row in rows]


def _policy(spec: ModelSpec, adapter_std: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = add_lora(load_base_model(spec, torch.float32),
                     LoraSettings(rank=4, dropout=0.0, extra_target_modules=("lm_head",)),
                     gradient_checkpointing=False)
    if adapter_std:
        for module in model.modules():
            if hasattr(module, "lora_B"):
                torch.nn.init.normal_(module.lora_B["default"].weight, std=adapter_std)
    return model.train()


class RecordingSGD(torch.optim.SGD):
    """Plain SGD that keeps the gradients of every step."""

    def __init__(self, params, lr: float) -> None:
        super().__init__(params, lr=lr)
        self.seen: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        self.seen.append([p.grad.clone() for group in self.param_groups for p in group["params"]])
        return super().step(closure)


def _completion_logprobs(model, prompt, completion: list[int], temperature: float) -> torch.Tensor:
    """log pi of each completion token: the prompt and completion alone, full logits."""
    sequence = with_reply(prompt, completion)  # every per-token field the processor gives
    inputs = {key: value[None] for key, value in sequence.tokens.items() if key != "labels"}
    logits = model(**inputs, **prompt.images, use_cache=False).logits[0]
    start = prompt.n_prompt_tokens - 1
    return torch.stack([torch.log_softmax(logits[start + t] / temperature, dim=-1)[token]
                        for t, token in enumerate(completion)])


def _reference_loss(model, pairs, advantages, included, old, ref, grpo: GrpoSettings):
    """The step's loss written out: token by token, summed, over the included tokens' count."""
    count = sum(len(completion) for (_, completion), keep in zip(pairs, included) if keep)
    loss = torch.zeros(())
    logps = []
    for i, (prompt, completion) in enumerate(pairs):
        logp = _completion_logprobs(model, prompt, completion, grpo.temperature)
        logps.append(logp.detach())
        if not included[i]:
            continue
        for t in range(len(completion)):
            ratio = torch.exp(logp[t] - old[i][t])
            clipped = torch.clamp(ratio, 1 - grpo.clip_low, 1 + grpo.clip_high)
            pg = -torch.minimum(ratio * advantages[i], clipped * advantages[i])
            delta = ref[i][t] - logp[t]
            loss = loss + (pg + grpo.kl_beta * (torch.exp(delta) - delta - 1)) / count
    return loss, logps


@pytest.mark.slow
def test_the_update_matches_a_token_by_token_reference(tiny_spec, prompts, tmp_path) -> None:
    grpo = GrpoSettings(ppo_epochs=2, micro_batch_size=3, clip_low=0.2, clip_high=0.28,
                        kl_beta=0.1, temperature=0.7)
    completions = [[40, 41, 300], [512, 77, 78, 900, 15], [250, 251, 252, 253], [600, 601, 602, 603, 604, 605]]
    pairs = [(prompts[i // 2], completion) for i, completion in enumerate(completions)]
    advantages = torch.tensor([1.0, -0.5, 0.3, -0.8])
    included = torch.tensor([True, True, True, False])  # the last one's tokens leave the loss
    lr = 0.05

    model = _policy(tiny_spec, adapter_std=0.05)
    reference_model = copy.deepcopy(model)
    optimizer = RecordingSGD([p for p in model.parameters() if p.requires_grad], lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    batches = update_batches([with_reply(prompt, completion) for prompt, completion in pairs],
                             advantages, included, grpo.micro_batch_size, 0, torch.device("cpu"),
                             prompt_indices=[i // 2 for i in range(len(pairs))])
    assert [b.inputs["input_ids"].shape[0] for b in batches] == [3, 1]
    # the image prompt's vision outputs computed once, reused by both its completions; the
    # log-probabilities from the head in chunks of 2 positions
    vision = PromptVision(model, prompts, torch.device("cpu"))
    assert list(vision.outputs) == [0]
    totals = policy_update(model, batches, optimizer, scheduler, LocalEnv(tmp_path, "cpu"),
                           Precision.resolve("fp32", torch.device("cpu")),
                           dataclasses.replace(grpo, logprob_chunk=2), max_grad_norm=1e9,
                           vision=vision)

    parameters = [p for p in reference_model.parameters() if p.requires_grad]
    with torch.no_grad(), reference_model.disable_adapter():
        ref = [_completion_logprobs(reference_model, p, c, grpo.temperature) for p, c in pairs]
    with torch.no_grad():
        old = [_completion_logprobs(reference_model, p, c, grpo.temperature) for p, c in pairs]
    losses, grads = [], []
    for _ in range(grpo.ppo_epochs):
        loss, _ = _reference_loss(reference_model, pairs, advantages, included, old, ref, grpo)
        step_grads = torch.autograd.grad(loss, parameters)
        with torch.no_grad():
            for parameter, grad in zip(parameters, step_grads):
                parameter -= lr * grad
        losses.append(float(loss.detach()))
        grads.append(step_grads)

    n_tokens = 3 + 5 + 4
    assert totals.tokens == 2 * n_tokens and totals.updates == 2
    assert totals.loss / n_tokens == pytest.approx(sum(losses), rel=1e-4, abs=1e-6)
    assert totals.clipped > 0, "the second step's ratio should reach the clip"
    assert totals.kl > 0
    for step in range(2):
        for recorded, expected in zip(optimizer.seen[step], grads[step]):
            scale = float(expected.abs().max())
            assert torch.allclose(recorded, expected, rtol=1e-4, atol=1e-5 * scale + 1e-9), step
    assert any(float(g.abs().max()) > 0 for g in grads[1])


@pytest.mark.slow
def test_kl_is_zero_while_the_adapter_is_zero(tiny_spec, prompts, tmp_path) -> None:
    grpo = GrpoSettings(micro_batch_size=4, kl_beta=0.5)
    pairs = [(prompts[i // 2], [100 + i, 200 + i, 300 + i]) for i in range(4)]
    cpu = torch.device("cpu")
    batches = update_batches([with_reply(p, c) for p, c in pairs], torch.tensor([1.0, -1.0, 0.5, -0.5]),
                             torch.ones(4, dtype=torch.bool), 4, 0, cpu)

    def kl_of(model) -> float:
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        return policy_update(model, batches, optimizer, scheduler, LocalEnv(tmp_path, "cpu"),
                             Precision.resolve("fp32", cpu), grpo, max_grad_norm=1.0).kl

    assert kl_of(_policy(tiny_spec, adapter_std=0.0)) == 0.0  # a fresh adapter: lora_B is zero
    assert kl_of(_policy(tiny_spec, adapter_std=0.05)) > 0.0


class CallCount:
    """Counts forward calls of a module."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        module.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        self.calls += 1


def _update(model, batches, grpo, tmp_path, vision=None):
    cpu = torch.device("cpu")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return policy_update(model, batches, optimizer, scheduler, LocalEnv(tmp_path, "cpu"),
                         Precision.resolve("fp32", cpu), grpo, max_grad_norm=1.0, vision=vision)


@pytest.mark.slow
@pytest.mark.parametrize("kl_beta", [0.0, 0.3])
def test_the_vision_tower_runs_once_per_prompt_and_the_reference_only_with_a_kl(
        tiny_spec, prompts, tmp_path, kl_beta) -> None:
    """Four completions of the image prompt in two micro-batches: the tower runs once (before
    the update), not once per micro-batch and pass; the reference pass exists only at beta > 0."""
    model = _policy(tiny_spec, adapter_std=0.05)
    base = model.get_base_model()
    tower, decoder = CallCount(base.model.visual), CallCount(base.model.language_model)
    sequences = [with_reply(prompts[0], [100 + i, 200 + i, 300 + i]) for i in range(4)]
    batches = update_batches(sequences, torch.tensor([1.0, -1.0, 0.5, -0.5]), torch.ones(4, dtype=torch.bool),
                             2, 0, torch.device("cpu"), prompt_indices=[0] * 4)
    grpo = GrpoSettings(kl_beta=kl_beta, ppo_epochs=2)
    vision = PromptVision(model, prompts, torch.device("cpu"))
    assert tower.calls == 1
    totals = _update(model, batches, grpo, tmp_path, vision)
    passes = len(batches) * (grpo.ppo_epochs + (1 if kl_beta else 0))
    assert (tower.calls, decoder.calls) == (1, passes)
    assert (totals.kl > 0) == (kl_beta > 0)
    # without shared vision outputs, the tower runs in every pass of every micro-batch
    _update(model, batches, grpo, tmp_path)
    assert tower.calls == 1 + passes


@pytest.mark.slow
def test_kl_to_the_starting_adapter_is_zero_before_the_policy_moves(tiny_spec, prompts, tmp_path) -> None:
    """kl_ref=init: the reference is the starting adapter, kept frozen beside the trained one,
    so the first update's KL is 0 where the base model's (the adapter disabled) is not; with
    LoRA dropout on, only an update without dropout keeps it at 0."""
    settings = LoraSettings(rank=4, dropout=0.5, extra_target_modules=("lm_head",))

    def policy() -> torch.nn.Module:
        torch.manual_seed(0)
        return add_lora(load_base_model(tiny_spec, torch.float32), settings, gradient_checkpointing=False)

    start = policy()
    for module in start.modules():
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.05)
    start.save_pretrained(str(tmp_path / "start"))
    sequences = [with_reply(prompts[i % 2], [100 + i, 200 + i, 300 + i]) for i in range(4)]
    batches = update_batches(sequences, torch.tensor([1.0, -1.0, 0.5, -0.5]), torch.ones(4, dtype=torch.bool),
                             4, 0, torch.device("cpu"), prompt_indices=[i % 2 for i in range(4)])
    grpo = GrpoSettings(kl_beta=0.5)

    model = policy()
    model.load_adapter(str(tmp_path / "start"), adapter_name="default")  # GRPO's init_adapter
    load_reference_adapter(model, tmp_path / "start")
    assert all(p.requires_grad == ("default" in n) for n, p in model.named_parameters() if "lora_" in n)
    train_without_dropout(model)
    assert _update(model, batches, grpo, tmp_path).kl == pytest.approx(0.0, abs=1e-6)
    model.train()  # dropout on: two passes of the same weights disagree
    assert _update(model, batches, grpo, tmp_path).kl > 1e-4
    assert all(p.requires_grad == ("default" in n) for n, p in model.named_parameters() if "lora_" in n)

    based = policy()
    based.load_adapter(str(tmp_path / "start"), adapter_name="default")
    train_without_dropout(based)
    assert _update(based, batches, grpo, tmp_path).kl > 1e-4  # kl_ref=base: the adapter disabled


def test_the_output_head_never_sees_more_rows_than_a_chunk(tiny_spec, prompts) -> None:
    """Log-probabilities in chunks: the head runs on at most ``chunk`` positions at a time, in
    the forward pass and again in backward (checkpointed), never on the whole sequence."""
    from crossmath.finetuning.collate import collate
    from crossmath.finetuning.logprobs import target_logprobs, target_positions

    model = _policy(tiny_spec, adapter_std=0.05)
    rows: list[int] = []
    model.get_output_embeddings().register_forward_hook(
        lambda module, args, logits: rows.append(logits.reshape(-1, logits.shape[-1]).shape[0]))
    batch = collate([with_reply(prompts[0], list(range(100, 111)))], 0)
    positions = target_positions(batch["labels"])
    chunked = target_logprobs(model, batch, positions, chunk=3)
    forward_rows = list(rows)
    chunked.sum().backward()
    assert forward_rows == [0, 3, 3, 3, 2]  # the model's own head call gets no rows
    assert max(rows) == 3 and sum(rows) == 2 * len(positions)  # backward recomputed each chunk once
    full = target_logprobs(model, batch, positions, chunk=10_000)
    assert torch.allclose(chunked, full, atol=1e-6)
