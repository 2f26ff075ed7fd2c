"""Where a LoRA training step's time goes: torch.profiler over a few steps of ``train_step``.

The same model shapes (random weights), data and step as ``train_gpu.py``, without the loop
around the step: the model is built in memory, LoRA added by ``crossmath.finetuning.modeling.add_lora``,
batches made by the loop's ``BatchMaker``, and each step is ``crossmath.finetuning.loop.train_step``.
After ``--warmup`` steps, ``--steps`` steps are timed, then the same batches run again under the
profiler. It prints (and writes to ``$OUT/profile_train.txt``) the operators by device time and
by host time, the number of operator calls per step, and the step time with and without the
profiler's overhead.

    python bench/profile_train.py                         # one GPU, Qwen2.5-VL-3B's shape
    python bench/profile_train.py --shape 3b-narrow       # CPU: 3B's layers, heads and windows
                                                          # at small widths (same operator calls)
    python bench/profile_train.py --shape tiny            # CPU smoke run

Runs on the GPU when there is one, else on the CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from shapes import QWEN25_VL_3B, QWEN25_VL_3B_NARROW, TINY, qwen25_vl_config  # (bench/shapes.py)
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForImageTextToText

from crossmath.finetuning.batches import BatchMaker
from crossmath.finetuning.collate import ExampleEncoder
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set, split_validation
from crossmath.finetuning.local import LocalEnv
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.modeling import Precision, add_lora
from crossmath.finetuning.schedule import Schedule
from crossmath.finetuning.sft_step import train_step
from crossmath.finetuning.train_settings import LoraSettings
from crossmath.models.processor import load_processor
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.models.tiny import build_tiny_random

SHAPES = {"3b": QWEN25_VL_3B, "3b-narrow": QWEN25_VL_3B_NARROW, "tiny": TINY}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="3b")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3, help="unprofiled steps first")
    parser.add_argument("--steps", type=int, default=3, help="timed, then profiled, steps")
    parser.add_argument("--max-pixels", type=int, default=1280 * 28 * 28)
    parser.add_argument("--attn", default="sdpa", help="the language model's attention implementation")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--rows", type=int, default=25, help="operators listed per table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="profile-train-") as work:
        return profile_steps(args, Path(work))


def profile_steps(args: argparse.Namespace, work: Path) -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = Precision.resolve("auto", device)
    folder = build_tiny_random()
    processor = load_processor(folder)
    config = qwen25_vl_config(SHAPES[args.shape], processor.tokenizer)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=precision.weights,
                                                        attn_implementation=args.attn)
    model = add_lora(model, LoraSettings(rank=16, alpha=32, dropout=0.05),
                     gradient_checkpointing=not args.no_gradient_checkpointing)
    model.train()

    n_steps = args.warmup + args.steps
    training_set = build_training_set(
        TrainingSetSpec(n_puzzles=max(8, n_steps * args.batch_size // 5 + 1), seed=2024,
                        styles=("original", "noborder")), work / "data")
    table, _ = split_validation(training_set.read(), 0.0)
    spec = ModelSpec(path=str(folder), name="profile", prompt_set=load_prompt_template(DEFAULT_PROMPT),
                     min_pixels=4 * 28 * 28, max_pixels=args.max_pixels)
    maker = BatchMaker(table, ExampleEncoder(processor, spec), processor.tokenizer.pad_token_id, 0,
                       pin_memory=device.type == "cuda")
    schedule = Schedule(table.num_rows, 1, args.batch_size, 1, 1, None, 0)
    batches = [maker.batch(schedule.micro_batches(step, 0)[0]) for step in range(n_steps)]
    env = LocalEnv(work / "checkpoints", str(device))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                  fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

    def step(batch: dict[str, torch.Tensor]) -> None:
        train_step(model, [batch], optimizer, scheduler, env, precision, 1.0)

    def timed(run: list[dict[str, torch.Tensor]]) -> float:
        _synchronize(device)
        started = time.perf_counter()
        for batch in run:
            step(batch)
        _synchronize(device)
        return (time.perf_counter() - started) / len(run)

    timed(batches[:args.warmup])
    measured = batches[args.warmup:]
    plain_s = timed(measured)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        profiled_s = timed(measured)  # the same batches again, now under the profiler
    events = prof.key_averages()
    calls = sum(event.count for event in events) / args.steps
    tokens = sum(int(b["attention_mask"].sum()) for b in measured)
    lines = [f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
             f"shape {args.shape}, torch {torch.__version__}, batch {args.batch_size}, attention {args.attn}, "
             f"checkpointing {not args.no_gradient_checkpointing}",
             f"step {plain_s:.4f} s ({tokens / args.steps / plain_s:.0f} tokens/s) unprofiled, "
             f"{profiled_s:.4f} s profiled; {calls:.0f} operator calls per step"]
    sort_keys = (["self_device_time_total"] if device.type == "cuda" else []) + ["self_cpu_time_total"]
    for key in sort_keys:
        lines += [f"\nby {key}, totals over {args.steps} steps:", events.table(sort_by=key, row_limit=args.rows)]
    text = "\n".join(lines)
    print(text, flush=True)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "profile_train.txt").write_text(text + "\n", encoding="utf-8")
    return text


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
