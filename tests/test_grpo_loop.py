"""The GRPO loop without Ray: settings, schedule, scoring of a step's rollouts, exact resume,
and learning.

The learning test runs the tiny random model, on CPU, with a simple verifiable reward: the share
of digits in the completion's text. The random model starts at what its near-uniform vocabulary
gives (about 0.4); rollouts, group advantages and the clipped update must push the digit tokens
up, clearly, within 20 steps.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from crossmath.finetuning.checkpoints import ADAPTER_DIR
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.grpo import GrpoJob, grpo_schedule, score_rollouts
from crossmath.finetuning.grpo_settings import GrpoSettings
from crossmath.finetuning.local import LocalEnv, train_locally
from crossmath.finetuning.modeling import save_adapter
from crossmath.finetuning.rewards import StepWeightedReward
from crossmath.finetuning.rollouts import Rollout
from crossmath.finetuning.train_settings import LoraSettings, TrainSettings
from crossmath.finetuning.worker_model import prepare_worker_model
from tests.test_train_loop import CrashAfter


class DigitShare:
    """A reward the tiny random model can earn: the share of digits in the completion's text."""

    def __call__(self, row, output: str) -> float:
        return sum(c.isdigit() for c in output) / max(len(output), 1)


def _tiny_settings(lr: float, checkpoint_every: int) -> TrainSettings:
    """The tiny model's adapters (its random output head adapts too), logging every step."""
    return TrainSettings(lora=LoraSettings(rank=4, dropout=0.0, extra_target_modules=("lm_head",)),
                         lr=lr, warmup_ratio=0.0, checkpoint_every=checkpoint_every, log_every=1,
                         gradient_checkpointing=False)


def _text_set(folder, n_puzzles: int, seed: int):
    return build_training_set(TrainingSetSpec(n_puzzles=n_puzzles, seed=seed, styles=("original",),
                                              modalities=("text",), target="answer"), folder)


class History(CrashAfter):
    """``CrashAfter`` that keeps each step's metrics."""

    def __init__(self, step: int = -1) -> None:
        super().__init__(step)
        self.history: dict[int, dict] = {}

    def __call__(self, metrics, step) -> None:
        self.history[step] = dict(metrics)
        super().__call__(metrics, step)


def test_settings_are_checked() -> None:
    settings = GrpoSettings.from_mapping({"rollouts": 8, "reward": {"step_weights": [1, 2]}})
    assert settings.rollouts == 8 and settings.reward == StepWeightedReward((1.0, 2.0))
    assert settings.sampling.temperature == 1.0
    with pytest.raises(ValueError, match=r"grpo: unknown field\(s\) \['n'\]"):
        GrpoSettings.from_mapping({"n": 4})
    with pytest.raises(ValueError, match="truncated must be one of"):
        GrpoSettings(truncated="drop")
    with pytest.raises(ValueError, match="rollouts must be at least 1"):
        GrpoSettings(rollouts=0)
    with pytest.raises(ValueError, match="clip_low"):
        GrpoSettings(clip_low=1.0)
    with pytest.raises(ValueError, match="temperature"):
        GrpoSettings(temperature=0.0)
    with pytest.raises(ValueError, match=r"prompts_per_step \(6\) must be a multiple .* \(4\)"):
        GrpoSettings(prompts_per_step=6).prompts_per_worker(4)


def test_the_schedule_gives_each_worker_its_own_puzzles_and_spans_epochs() -> None:
    grpo = GrpoSettings(steps=7, prompts_per_step=4)
    schedule = grpo_schedule(n_examples=10, world_size=2, grpo=grpo, seed=0)
    assert schedule.steps_per_epoch == 2 and schedule.epochs == 4 and schedule.total_steps == 7
    for step in range(7):
        shares = [schedule.micro_batches(step, rank) for rank in range(2)]
        assert all(len(share) == 1 and len(share[0]) == 2 for share in shares)
        assert not set(shares[0][0]) & set(shares[1][0])
    epoch = [i for step in range(2) for rank in range(2) for i in schedule.micro_batches(step, rank)[0]]
    assert len(set(epoch)) == 8


def _rollouts(texts: list[str], truncated: list[bool], samples: int) -> list[Rollout]:
    return [Rollout(i // samples, i % samples, (1,), text, cut)
            for i, (text, cut) in enumerate(zip(texts, truncated))]


@pytest.mark.parametrize("rule", ["zero", "exclude", "keep"])
def test_scoring_a_step_applies_the_truncation_rule(rule: str) -> None:
    rows = [{"answer": ["3", "4"], "steps": [1, 1]}, {"answer": ["5"], "steps": [2]}]
    texts = ["<answer>3 4</answer>", "<answer>3 0</answer>", "<answer>3 4</answer>", "nothing",
             "<answer>5</answer>", "<answer>5</answer>", "<answer>5</answer>", "<answer>6</answer>"]
    truncated = [False, False, True, False, False, False, False, True]
    scored = score_rollouts(_rollouts(texts, truncated, 4), rows, StepWeightedReward(), 4, rule)
    rewards = {"zero": [[1, 0.5, 0, 0], [1, 1, 1, 0]], "exclude": [[1, 0.5, 1, 0], [1, 1, 1, 0]],
               "keep": [[1, 0.5, 1, 0], [1, 1, 1, 0]]}[rule]
    assert scored.rewards.tolist() == rewards
    assert scored.included.tolist() == ([[True, True, False, True], [True, True, True, False]]
                                        if rule == "exclude" else [[True] * 4] * 2)
    assert scored.answered == 7 and scored.truncated == 2
    if rule == "exclude":  # the second group's kept rewards are all 1: no signal
        assert scored.zero_variance.tolist() == [False, True]
        assert scored.advantages[1].tolist() == [0.0] * 4 and scored.advantages[0, 2] == 0
    else:
        assert scored.zero_variance.tolist() == [False, False]
    assert torch.allclose(scored.advantages[0].sum(), torch.zeros((), dtype=torch.float32), atol=1e-6)
    with pytest.raises(ValueError, match="prompt by prompt"):
        score_rollouts(_rollouts(texts, truncated, 4)[::-1], rows, StepWeightedReward(), 4, rule)


@pytest.mark.slow
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tiny_spec, tmp_path) -> None:
    built = _text_set(tmp_path / "set", n_puzzles=6, seed=11)
    settings = _tiny_settings(lr=1e-2, checkpoint_every=2)
    grpo = GrpoSettings(steps=5, prompts_per_step=2, rollouts=3, max_completion_tokens=6,
                        truncated="keep", rollout_batch_size=4, micro_batch_size=4, ppo_epochs=2,
                        kl_beta=0.01)  # a KL term, so the reference pass runs and its KL is logged

    def job(sink) -> GrpoJob:
        return GrpoJob(tiny_spec, settings, grpo, built.read, sink, reward=DigitShare())

    whole = History()
    summary = train_locally(job(whole), tmp_path / "whole")
    assert list(whole.history) == [1, 2, 3, 4, 5] and summary["final_step"] == 5
    assert summary["resumed_from_step"] == -1
    expected = {"grpo/reward_mean", "grpo/reward_std", "grpo/zero_variance_groups",
                "grpo/answer_tag_rate", "grpo/completion_tokens", "grpo/truncated_rate", "grpo/kl",
                "grpo/clip_fraction", "grpo/loss", "train/grad_norm", "train/lr",
                "train/step_time_s", "rollout/tokens_per_s", "rollout/time_s"}
    assert set(whole.history[1]) == expected
    assert whole.history[5]["grpo/kl"] > 0.0  # the adapter has moved off zero
    assert any(m["grpo/clip_fraction"] > 0 for m in whole.history.values())

    crash = History(step=3)
    with pytest.raises(RuntimeError, match="simulated crash at step 3"):
        train_locally(job(crash), tmp_path / "split")
    assert [p.name for p in LocalEnv(tmp_path / "split").checkpoints()] == ["checkpoint-0000002"]
    rest = History()
    resumed = train_locally(job(rest), tmp_path / "split")
    assert resumed["resumed_from_step"] == 2 and list(rest.history) == [3, 4, 5]
    for step in (3, 4, 5):  # the same rollouts after the resume: keyed sampling
        assert rest.history[step]["grpo/reward_mean"] == pytest.approx(whole.history[step]["grpo/reward_mean"])

    final = {name: LocalEnv(tmp_path / name).checkpoints()[-1] for name in ("whole", "split")}
    weights = {name: load_file(folder / ADAPTER_DIR / "adapter_model.safetensors")
               for name, folder in final.items()}
    assert weights["whole"].keys() == weights["split"].keys()
    for key, value in weights["whole"].items():
        assert torch.allclose(value, weights["split"][key], atol=1e-6), key
    assert any(v.abs().max() > 0 for k, v in weights["whole"].items() if "lora_B" in k)


def test_grpo_starts_from_a_saved_adapter_of_the_same_shape(tiny_spec, tmp_path) -> None:
    settings = _tiny_settings(lr=1e-2, checkpoint_every=0)
    env = LocalEnv(tmp_path / "checkpoints", "cpu")
    source = prepare_worker_model(tiny_spec, settings, env).model
    for module in source.modules():  # an "SFT" adapter that has moved off zero
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.1)
    save_adapter(source, tmp_path / "sft")
    started = prepare_worker_model(tiny_spec, settings, env, init_adapter=tmp_path / "sft").model
    expected = {k: v for k, v in source.state_dict().items() if "lora_" in k}
    loaded = started.state_dict()
    assert expected and all(torch.equal(loaded[k], v) for k, v in expected.items())
    assert all(p.requires_grad for k, p in started.named_parameters() if "lora_" in k)
    wider = dataclasses.replace(settings, lora=dataclasses.replace(settings.lora, rank=8))
    with pytest.raises(ValueError, match="adapter_config.json: field 'r' is 4, but train.lora gives 8"):
        prepare_worker_model(tiny_spec, wider, env, init_adapter=tmp_path / "sft")


@pytest.mark.slow
def test_mean_reward_of_the_last_quarter_clearly_beats_the_first(tiny_spec, tmp_path) -> None:
    steps = 20
    grpo = GrpoSettings(steps=steps, prompts_per_step=4, rollouts=4, max_completion_tokens=8,
                        truncated="keep", rollout_batch_size=16, micro_batch_size=16)
    record = History()
    job = GrpoJob(tiny_spec, _tiny_settings(lr=2e-2, checkpoint_every=0), grpo,
                  _text_set(tmp_path / "set", n_puzzles=12, seed=9).read, record, reward=DigitShare())
    assert train_locally(job, tmp_path / "run")["final_step"] == steps
    rewards = {step: metrics["grpo/reward_mean"] for step, metrics in record.history.items()}
    assert sorted(rewards) == list(range(1, steps + 1))
    quarter = steps // 4
    first = sum(rewards[s] for s in range(1, quarter + 1)) / quarter
    last = sum(rewards[s] for s in range(steps - quarter + 1, steps + 1)) / quarter
    assert last > first + 0.2, rewards
