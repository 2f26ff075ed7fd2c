"""GRPO on one GPU: rollout tokens/s, the update's tokens/s and MFU, and step time, on the
Qwen2.5-VL-3B shape at the study's completion length (6,000 tokens).

A random-weight model with the shape of Qwen2.5-VL-3B is built from its published config and
saved (``train_gpu.save_random_model``: nothing downloaded; the tokenizer and image processor are
the tiny model's), with crossmath's ``sdpa_gqa`` attention as the evaluation's backend uses it.
The prompts are rendered training puzzles in the image modality, GRPO's default. In one run:

  rollouts, loop     the release's way of sampling: one transformers ``generate`` call per puzzle,
                     ``num_return_sequences=--rollouts`` (each sample prefilled on its own), keyed
                     sampling on top of greedy decoding (the baseline), over ``--loop-prompts``
                     puzzles and ``--ratio-tokens`` new tokens
  rollouts, batched  crossmath's rollouts (``crossmath.finetuning.rollouts``, the evaluation's
                     ``Decoder``) of the same puzzles, same samples, same tokens: one decode,
                     left-padded, each puzzle prefilled once for its samples. The ratio compares
                     equal batches (the same sequences); the batched rollouts of a whole step
                     (``--prompts`` puzzles) are timed beside it, without a ratio
  update             GRPO's policy update (``grpo.policy_update``, as the loop runs it: dropout
                     off, each prompt's vision output computed once, log-probabilities in chunks,
                     gradient checkpointing, bf16) on ``--prompts`` x ``--rollouts`` completions of
                     ``--max-completion-tokens`` tokens (the study's 6,000): tokens/s, peak memory
                     and model FLOPs utilisation (``train_gpu.FlopModel``, SFT's accounting: the
                     completion tokens are the targets; the vision tower counted once per prompt)
  grpo steps         ``--steps`` whole GRPO steps of ``--step-prompts`` puzzles through
                     ``crossmath.finetuning.local`` (the worker loop of ``python -m crossmath.train
                     method=grpo``): rollouts of ``--max-completion-tokens``, rewards, the update;
                     step time and rollout tokens/s as the loop logs them

Both rollout variants sample with the same keys, so they generate the same completions (up to
bf16 differences between padded and unpadded batches, shared and separate prefills; the share of
identical ones is reported).
Random weights almost never emit an end token, so completions run to
``--max-completion-tokens``: the worst case, and equal work per sequence in both variants.

    python bench/grpo_gpu.py --tiny                  # CPU smoke run, about a minute
    python bench/grpo_gpu.py --time-budget-s 420     # one GPU (H100/H200)

Results go to ``$OUT/grpo_gpu.json`` when OUT is set. Printed: the batched rollouts' tokens/s
over the loop's at equal batches, measured in the same run, and the update's tokens/s and MFU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from shapes import QWEN25_VL_3B, TINY  # (bench/shapes.py)
from train_gpu import (  # (bench/train_gpu.py)
    FlopModel,
    bench_model_spec,
    free_memory,
    machine_info,
    peak_flops,
    save_random_model,
    watchdog,
    write_report,
)

from crossmath.finetuning.collate import EncodedExample, ExampleEncoder, collate, with_reply
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set
from crossmath.finetuning.grpo import GrpoJob, policy_update, update_batches
from crossmath.finetuning.grpo_settings import GrpoSettings
from crossmath.finetuning.local import LocalEnv, train_locally
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.modeling import Precision, add_lora, load_base_model
from crossmath.finetuning.optimization import adamw, autocast
from crossmath.finetuning.policy_passes import (
    PromptVision,
    accepts_vision_outputs,
    train_without_dropout,
)
from crossmath.finetuning.rollouts import (
    RolloutGenerator,
    placeholder_token_ids,
    rollout_identity,
)
from crossmath.finetuning.train_settings import LoraSettings, TrainSettings
from crossmath.finetuning.worker_model import prepare_worker_model
from crossmath.models.checkpoint_loading import stop_token_ids
from crossmath.models.processor import load_processor
from crossmath.models.sampling import SeededSampler, sequence_keys
from crossmath.models.sampling_settings import SamplingSettings
from crossmath.models.tiny import build_tiny_random


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU: a smoke test")
    parser.add_argument("--time-budget-s", type=float, default=None, help="whole run, model build included")
    parser.add_argument("--prompts", type=int, default=None, help="puzzles per GRPO step")
    parser.add_argument("--loop-prompts", type=int, default=None, help="puzzles the baseline loop samples")
    parser.add_argument("--rollouts", type=int, default=4, help="completions per puzzle")
    parser.add_argument("--max-completion-tokens", type=int, default=None,
                        help="completion length of the update and of the GRPO steps")
    parser.add_argument("--ratio-tokens", type=int, default=None,
                        help="new tokens of the loop-vs-batched rollout comparison")
    parser.add_argument("--steps", type=int, default=None, help="whole GRPO steps")
    parser.add_argument("--step-prompts", type=int, default=None, help="puzzles per whole GRPO step")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, if not known")
    parser.add_argument("--micro-batch-size", type=int, default=None, help="sequences per update forward")
    parser.add_argument("--max-pixels", type=int, default=None, help="image size bound (pixels)")
    parser.add_argument("--cache-dir", default=None, help="where the tiny tokenizer/processor is built")
    args = parser.parse_args(argv)
    defaults = (dict(time_budget_s=150.0, prompts=4, loop_prompts=2, max_completion_tokens=8,
                     ratio_tokens=8, steps=2, step_prompts=4, micro_batch_size=4,
                     max_pixels=64 * 28 * 28)
                if args.tiny else
                dict(time_budget_s=420.0, prompts=16, loop_prompts=4, max_completion_tokens=6000,
                     ratio_tokens=256, steps=1, step_prompts=2, micro_batch_size=2,
                     max_pixels=1280 * 28 * 28))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not 1 <= args.loop_prompts <= args.prompts or not 1 <= args.step_prompts <= args.prompts:
        parser.error("--loop-prompts and --step-prompts must lie in 1..--prompts")
    return args


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


Completion = tuple[tuple[int, ...], bool]  # generated ids up to the stop token, truncated


def loop_rollouts(policy: torch.nn.Module, tokenizer, prompts: list[EncodedExample], samples: int,
                  max_new_tokens: int, sampling: SamplingSettings, seed: int,
                  device: torch.device) -> list[Completion]:
    """The release's loop: per puzzle, one ``generate`` call for its samples (the prompt
    repeated, as ``num_return_sequences`` expands it: each sample prefilled on its own), with
    the rollouts' keys, stop ids and suppressed placeholders, so the completions are the same."""
    stops = stop_token_ids(policy, tokenizer)
    made: list[Completion] = []
    for prompt in prompts:
        batch = collate([prompt] * samples, tokenizer.pad_token_id, padding_side="left")
        length = batch["input_ids"].shape[1]
        identities = [rollout_identity(0, prompt.example_id, s) for s in range(samples)]
        keys = sequence_keys(seed, identities, device)
        output = policy.generate(
            **{k: v.to(device) for k, v in batch.items()}, do_sample=False, top_k=None,
            max_new_tokens=max_new_tokens, use_cache=True, repetition_penalty=1.0,
            logits_processor=[SeededSampler(keys, length, sampling)], eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id, suppress_tokens=placeholder_token_ids(policy))
        for row in output[:, length:].tolist():
            end = next((i + 1 for i, token in enumerate(row) if token in stops), None)
            made.append((tuple(row if end is None else row[:end]), end is None))
    return made


def time_rollouts(device: torch.device, precision: Precision,
                  run: Callable[[], list[Completion]]) -> tuple[dict[str, Any], list[Completion]]:
    """Generated tokens, seconds, tokens/s and peak memory of one pass of ``run``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    started = time.perf_counter()
    with autocast(device, precision):
        completions = run()
    _sync(device)
    seconds = time.perf_counter() - started
    tokens = sum(len(ids) for ids, _ in completions)
    return {"sequences": len(completions), "tokens": tokens, "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "truncated_share": sum(cut for _, cut in completions) / len(completions),
            "peak_memory_gib": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                                if device.type == "cuda" else None)}, completions


def compare_rollouts(args: argparse.Namespace, policy: torch.nn.Module, encoder: ExampleEncoder,
                     prompts: list[EncodedExample], device: torch.device,
                     precision: Precision) -> dict[str, Any]:
    """The release's loop against the batched rollouts on the same ``--loop-prompts`` puzzles
    (equal batches: the same sequences), same policy, same keys, ``--ratio-tokens`` new tokens;
    then the batched rollouts of all ``--prompts``. Each warmed up first on one puzzle."""
    sampling = GrpoSettings().sampling

    def loop(puzzles: list[EncodedExample], tokens: int) -> list[Completion]:
        return loop_rollouts(policy, encoder.tokenizer, puzzles, args.rollouts, tokens, sampling, 0,
                             device)

    def batched(puzzles: list[EncodedExample], tokens: int) -> tuple[dict, list[Completion]]:
        generator = RolloutGenerator(encoder.tokenizer, samples=args.rollouts,
                                     max_new_tokens=tokens, sampling=sampling, seed=0,
                                     batch_size=len(puzzles) * args.rollouts)
        timed, completions = time_rollouts(device, precision, lambda: [
            (r.token_ids, r.truncated) for r in generator.generate(policy, puzzles, 0, device)])
        stats = generator.last_stats
        timed.update(prompts_prefilled=sum(s.prompts for s in stats),
                     prefill_s=round(sum(s.prefill_s for s in stats), 3),
                     decode_s=round(sum(s.decode_s for s in stats), 3))
        return timed, completions

    time_rollouts(device, precision, lambda: loop(prompts[:1], 2))  # warm-up
    batched(prompts[:1], 2)
    loop_timed, loop_completions = time_rollouts(
        device, precision, lambda: loop(prompts[:args.loop_prompts], args.ratio_tokens))
    batched_timed, batched_completions = batched(prompts[:args.loop_prompts], args.ratio_tokens)
    same = sum(a == b for a, b in zip(loop_completions, batched_completions))
    ratio = batched_timed["tokens_per_s"] / loop_timed["tokens_per_s"]
    whole_step, _ = batched(prompts, args.ratio_tokens)
    return {"loop": loop_timed, "batched": batched_timed, "batched_whole_step": whole_step,
            "identical_completions": f"{same}/{len(loop_completions)}",
            "ratio_batched_vs_loop": round(ratio, 2)}


def measure_update(args: argparse.Namespace, spec: ModelSpec, settings: TrainSettings,
                   prompts: list[EncodedExample], encoder: ExampleEncoder, flop_model: FlopModel,
                   device: torch.device, peak: float | None) -> dict[str, Any]:
    """GRPO's update on ``--prompts`` x ``--rollouts`` completions of ``--max-completion-tokens``
    random tokens (random weights would never stop earlier either), timed after one warm-up
    update on the first micro-batch's worth of completions."""
    env = LocalEnv(Path(tempfile.mkdtemp(prefix="grpo-update-")), str(device))
    prepared = prepare_worker_model(spec, settings, env)
    model = prepared.model
    train_without_dropout(model)
    grpo = GrpoSettings(rollouts=args.rollouts, micro_batch_size=args.micro_batch_size)
    generator = torch.Generator().manual_seed(0)
    specials = set(encoder.tokenizer.all_special_ids)
    vocabulary = [i for i in range(len(encoder.tokenizer)) if i not in specials]
    sequences, owners = [], []
    for index, prompt in enumerate(prompts):
        for _ in range(args.rollouts):
            picks = torch.randint(len(vocabulary), (args.max_completion_tokens,), generator=generator)
            sequences.append(with_reply(prompt, [vocabulary[i] for i in picks.tolist()]))
            owners.append(index)
    advantages = torch.randn(len(sequences), generator=generator)
    optimizer = adamw(model, settings, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    precision = prepared.precision

    def update(count: int) -> float:
        batches = update_batches(sequences[:count], advantages[:count], torch.ones(count, dtype=torch.bool),
                                 grpo.micro_batch_size, prepared.pad_token_id, device, owners[:count])
        _sync(device)
        started = time.perf_counter()
        with autocast(device, precision):
            vision = (PromptVision(model, prompts, device)
                      if settings.lora.vision_tower == "frozen" and accepts_vision_outputs(model) else None)
        policy_update(model, batches, optimizer, scheduler, env, precision, grpo, 1.0, vision)
        _sync(device)
        return time.perf_counter() - started

    update(grpo.micro_batch_size)  # warm-up: allocator, kernels
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = update(len(sequences))
    tokens = sum(s.length for s in sequences)
    patches = {i: int(p.images["image_grid_thw"].prod()) for i, p in enumerate(prompts) if p.images}
    flops = sum(flop_model.per_example(s.length, s.n_target_tokens, 0) for s in sequences)
    flops += sum(flop_model.per_example(0, 0, n) for n in patches.values())  # the tower, once a prompt
    return {"sequences": len(sequences), "completion_tokens": args.max_completion_tokens,
            "micro_batch_size": grpo.micro_batch_size, "tokens": tokens, "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "model_tflops_per_s": round(flops / seconds / 1e12, 6),
            "mfu": round(flops / seconds / peak, 4) if peak else None,
            "vision_once_per_prompt": bool(patches) and settings.lora.vision_tower == "frozen",
            "peak_memory_gib": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                                if device.type == "cuda" else None)}


class Recorder:
    """Metrics sink of the GRPO steps: keeps each step's line."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def __call__(self, metrics, step: int) -> None:
        self.steps.append({"step": step, **metrics})


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.monotonic()
    out_path = Path(os.environ["OUT"]) / "grpo_gpu.json" if os.environ.get("OUT") else None
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    report: dict[str, Any] = {"status": "running", "info": machine_info(args, device)}
    watchdog(args.time_budget_s, report, out_path)
    work = Path(tempfile.mkdtemp(prefix="grpo-gpu-"))  # the saved model: gigabytes, removed after
    try:
        return run(args, report, device, work, started, out_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, report: dict, device: torch.device, work: Path, started: float,
        out_path: Path | None) -> dict:
    precision = Precision.resolve("auto", device)
    processor = load_processor(build_tiny_random(args.cache_dir))
    model_folder = work / "model"
    config = save_random_model(TINY if args.tiny else QWEN25_VL_3B, processor, model_folder, device,
                               precision.weights)
    report["info"]["model_build_s"] = round(time.monotonic() - started, 1)
    training_set = build_training_set(
        TrainingSetSpec(n_puzzles=args.prompts * (args.steps + 1), seed=2025, styles=("original",),
                        modalities=("image",), target="answer"), work / "data")
    table = training_set.read()
    spec = bench_model_spec(model_folder, args.max_pixels, "sdpa_gqa")
    encoder = ExampleEncoder(processor, spec)
    prompts = [encoder.encode_prompt_example(row)
               for row in table.sort_by("example_id").slice(0, args.prompts).to_pylist()]
    report["info"]["mean_prompt_tokens"] = round(statistics.mean(p.n_prompt_tokens for p in prompts), 1)
    lora = LoraSettings(rank=16, alpha=32, dropout=0.05)  # auto targets; dropout off in GRPO's passes

    # rollouts: the loop against the batched generator, same policy, same keys
    policy = add_lora(load_base_model(spec, precision.weights), lora, gradient_checkpointing=True)
    policy = policy.to(device).eval()

    report["rollouts"] = compare_rollouts(args, policy, encoder, prompts, device, precision)
    write_report(report, out_path)
    del policy
    if device.type == "cuda":
        torch.cuda.empty_cache()

    settings = TrainSettings(lora=lora, lr=1e-6, warmup_ratio=0.0, precision="auto",
                             gradient_checkpointing=True, checkpoint_every=0, keep_checkpoints=1,
                             log_every=1, seed=0)
    # the update at the study's completion length, with SFT's FLOP accounting
    peak = peak_flops(args, device)
    report["update"] = measure_update(args, spec, settings, prompts, encoder,
                                      FlopModel(config, lora.rank), device, peak)
    free_memory(device)  # the update's model is gone with its frame
    write_report(report, out_path)

    # whole GRPO steps, through the worker loop the CLI runs
    grpo = GrpoSettings(steps=args.steps, prompts_per_step=args.step_prompts, rollouts=args.rollouts,
                        max_completion_tokens=args.max_completion_tokens,
                        rollout_batch_size=args.step_prompts * args.rollouts,
                        micro_batch_size=args.micro_batch_size)
    recorder = Recorder()
    tick = time.monotonic()
    train_locally(GrpoJob(spec, settings, grpo, lambda: table, recorder), work / "grpo",
                  device=str(device))
    measured = recorder.steps[1:] or recorder.steps  # the first step warms the update's kernels
    step_time = statistics.median(m["train/step_time_s"] for m in measured)
    rollout_time = statistics.median(m["rollout/time_s"] for m in measured)
    report["grpo_steps"] = {
        "steps": len(recorder.steps), "measured_steps": len(measured),
        "step_time_s": round(step_time, 3), "rollout_time_s": round(rollout_time, 3),
        "update_time_s": round(step_time - rollout_time, 3),
        "rollout_tokens_per_s": round(statistics.median(m["rollout/tokens_per_s"] for m in measured), 1),
        "completion_tokens": measured[-1]["grpo/completion_tokens"],
        "peak_memory_gib": measured[-1].get("train/peak_memory_gb"),
        "wall_s_with_startup": round(time.monotonic() - tick, 1)}
    report.update(status="done", total_s=round(time.monotonic() - started, 1),
                  peak_dense_bf16_tflops=None if peak is None else peak / 1e12)
    write_report(report, out_path)
    print(json.dumps(report, indent=1), flush=True)
    rollouts = report["rollouts"]
    update = report["update"]
    print(f"rollout tokens/s, batched / loop at equal batches ({rollouts['loop']['sequences']} "
          f"sequences): {rollouts['ratio_batched_vs_loop']}x "
          f"({rollouts['batched']['tokens_per_s']} / {rollouts['loop']['tokens_per_s']}); "
          f"GRPO update at {args.max_completion_tokens}-token completions: "
          f"{update['tokens_per_s']} tokens/s, MFU {update['mfu']}; GRPO step {step_time:.2f} s, "
          f"of which rollouts {rollout_time:.2f} s")
    return report


if __name__ == "__main__":
    main()
