"""GRPO learns: the tiny random model, on CPU, raises a simple verifiable reward.

The reward is the share of digits in the completion's text. The random model starts at what its
near-uniform vocabulary gives (about a third); rollouts, group advantages and the clipped update
must push the digit tokens up. The same loop as the CLI's, in this process (no Ray start-up).
"""

from __future__ import annotations

from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.grpo import GrpoJob, GrpoSettings
from crossmath.finetuning.local import train_locally
from crossmath.finetuning.loop import TrainSettings
from crossmath.finetuning.modeling import LoraSettings

STEPS = 20


class DigitShare:
    def __call__(self, row, output: str) -> float:
        return sum(c.isdigit() for c in output) / max(len(output), 1)


class History:
    def __init__(self) -> None:
        self.rewards: dict[int, float] = {}

    def __call__(self, metrics, step: int) -> None:
        self.rewards[step] = metrics["grpo/reward_mean"]


def test_mean_reward_of_the_last_quarter_clearly_beats_the_first(tiny_model_config, tmp_path) -> None:
    built = build_training_set(TrainingSetSpec(n_puzzles=12, seed=9, styles=("original",),
                                               modalities=("text",), target="answer"), tmp_path / "set")
    settings = TrainSettings(lora=LoraSettings(rank=4, dropout=0.0, extra_target_modules=("lm_head",)),
                             lr=2e-2, warmup_ratio=0.0, checkpoint_every=0, log_every=1,
                             gradient_checkpointing=False)
    grpo = GrpoSettings(steps=STEPS, prompts_per_step=4, rollouts=4, max_completion_tokens=8,
                        truncated="keep", rollout_batch_size=16, micro_batch_size=16)
    history = History()
    summary = train_locally(GrpoJob(tiny_model_config, settings, grpo, built.read, history,
                                    reward=DigitShare()), tmp_path / "run")
    assert summary["final_step"] == STEPS and sorted(history.rewards) == list(range(1, STEPS + 1))
    quarter = STEPS // 4
    first = sum(history.rewards[s] for s in range(1, quarter + 1)) / quarter
    last = sum(history.rewards[s] for s in range(STEPS - quarter + 1, STEPS + 1)) / quarter
    assert last > first + 0.2, history.rewards
