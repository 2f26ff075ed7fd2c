"""LoRA SFT throughput on one GPU: crossmath's Ray Train path against a plain single-process loop.

A random-weight model with the shape of Qwen2.5-VL-3B is built from its published config
(nothing is downloaded; the tokenizer and image processor are the tiny model's, built locally,
so text lengths are those of that tokenizer) and saved, so both paths load it the way training
does. A training set of rendered puzzles (original and noborder, image + hybrid + text, rationale
targets) is built, and in one run, on the same data, batches and settings:

  plain  ``crossmath.finetuning.local``: ``run_worker`` in this process, the model on the GPU, no Ray
  ray    ``crossmath.finetuning.ray_trainer.fit``: the same ``run_worker`` inside a Ray Train
         ``TorchTrainer`` worker (1 GPU), examples through the object store, checkpoints and
         metrics the way ``python -m crossmath.train`` runs them

Both run the same number of optimizer steps. Throughput is tokens (prompt + image + target, no
padding) per second measured by the loop itself over its log windows; the first window (warm-up:
allocator, kernels' autotuning) is left out. Also reported: peak GPU memory (allocated), wall
time with start-up (model load, Ray start), and model FLOPs utilisation: the FLOPs LoRA training
needs per example (forward + input-gradient backward of the frozen language model, adapters'
forward and both backward halves, causal attention, the output head at target positions only,
and the frozen vision tower's forward), over the measured time, over the card's dense bf16 peak.
Gradient checkpointing's recompute is not counted (it is hardware work, not model work).

    python bench/train_gpu.py --tiny                  # CPU smoke run, under 2 minutes
    python bench/train_gpu.py --time-budget-s 240     # one GPU (H100/H200)

Results go to ``$OUT/train_gpu.json`` when OUT is set. The target: Ray's tokens/s at least 0.95
of the plain loop's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import transformers
from shapes import QWEN25_VL_3B, TINY, qwen25_vl_config  # (bench/shapes.py)
from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig

from crossmath.finetuning.collate import ExampleEncoder
from crossmath.finetuning.dataset import TrainingSetSpec, build_training_set, split_validation
from crossmath.finetuning.local import train_locally
from crossmath.finetuning.loop import TrainJob
from crossmath.finetuning.model_spec import ModelSpec
from crossmath.finetuning.schedule import Schedule
from crossmath.finetuning.train_settings import LoraSettings, TrainSettings
from crossmath.models.processor import load_processor
from crossmath.models.prompts import DEFAULT_PROMPT, load_prompt_template
from crossmath.models.tiny import build_tiny_random

REPO = Path(__file__).resolve().parents[1]  # the checkout, for the Ray workers' PYTHONPATH
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DENSE_BF16_PEAK = {"H200": 989.4e12, "H100 PCIe": 756.0e12, "H100": 989.4e12, "A100": 312.0e12}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU: a smoke test")
    parser.add_argument("--time-budget-s", type=float, default=None, help="whole run, model build included")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per path")
    parser.add_argument("--log-every", type=int, default=None, help="steps per measured window")
    parser.add_argument("--batch-size", type=int, default=None, help="examples per step")
    parser.add_argument("--puzzles", type=int, default=None, help="puzzles in the training set")
    parser.add_argument("--target", default="rationale", choices=("rationale", "answer"))
    parser.add_argument("--max-pixels", type=int, default=None, help="image size bound (pixels)")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--loader-threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, if not known")
    parser.add_argument("--cache-dir", default=None, help="where the tiny tokenizer/processor is built")
    args = parser.parse_args(argv)
    defaults = (dict(time_budget_s=110.0, steps=6, log_every=2, batch_size=2, puzzles=8,
                     max_pixels=64 * 28 * 28)
                if args.tiny else
                dict(time_budget_s=240.0, steps=40, log_every=5, batch_size=4, puzzles=96,
                     max_pixels=1280 * 28 * 28))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.steps < 2 * args.log_every or args.steps % args.log_every:
        parser.error("--steps must be a multiple of --log-every, at least two windows (the first "
                     "is warm-up)")
    return args


# ------------------------------------------------------------------------------------------
# The model on disk
def save_random_model(dims: dict, processor: Any, folder: Path, device: torch.device,
                      dtype: torch.dtype) -> Qwen2_5_VLConfig:
    """A random-weight Qwen2.5-VL of the given shape, saved with the tiny processor."""
    config = qwen25_vl_config(dims, processor.tokenizer)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model
    free_memory(device)
    return config


def bench_model_spec(model_folder: Path, max_pixels: int, attn_implementation: str = "sdpa") -> ModelSpec:
    """The saved model as training takes it: its ``conf/model`` entry read as the door reads it."""
    config = {"_target_": "crossmath.models.hf.HFBackend", "name": "bench-model",
              "model": str(model_folder), "prompt": DEFAULT_PROMPT,
              "attn_implementation": attn_implementation, "enable_thinking": None,
              "min_pixels": 4 * 28 * 28, "max_pixels": max_pixels}
    return ModelSpec.from_backend_config(config, load_prompt_template(DEFAULT_PROMPT))


# ------------------------------------------------------------------------------------------
# Model FLOPs of LoRA training
@dataclass(frozen=True)
class FlopModel:
    """FLOPs one training example needs, from the model's dimensions (see the module docstring)."""

    config: Any
    rank: int

    def per_example(self, tokens: int, targets: int, patches: int) -> float:
        text, vision = self.config.text_config, self.config.vision_config
        h, layers = text.hidden_size, text.num_hidden_layers
        head_dim = h // text.num_attention_heads
        kv = text.num_key_value_heads * head_dim
        shapes = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                  "gate_proj": (h, text.intermediate_size), "up_proj": (h, text.intermediate_size),
                  "down_proj": (text.intermediate_size, h)}
        linear = layers * sum(a * b for a, b in shapes.values())
        lora = layers * sum(self.rank * (shapes[name][0] + shapes[name][1]) for name in LORA_TARGETS)
        flops = 4 * linear * tokens  # forward + gradient w.r.t. inputs (weights frozen)
        flops += 6 * lora * tokens  # adapters: forward + both backward halves
        flops += 6 * tokens**2 * h * layers  # causal attention: 2T²h forward, 4T²h backward
        flops += 4 * text.vocab_size * h * targets  # output head, at target positions only
        hv, mv = vision.hidden_size, vision.spatial_merge_size**2
        block = 4 * hv * hv + 3 * hv * vision.intermediate_size
        merger = (hv * mv) ** 2 + hv * mv * vision.out_hidden_size
        patch_in = 3 * vision.temporal_patch_size * vision.patch_size**2
        window = (vision.window_size // vision.patch_size) ** 2
        full_blocks = len(vision.fullatt_block_indexes)
        flops += 2 * (vision.depth * block + patch_in * hv) * patches + 2 * merger * patches / mv
        flops += 4 * patches * hv * (window * (vision.depth - full_blocks) + patches * full_blocks)
        return float(flops)


def example_costs(table, indices: set[int], encoder: ExampleEncoder,
                  flop_model: FlopModel) -> dict[int, dict]:
    """Length, target count, image patches and FLOPs of the examples at ``indices``."""
    costs = {}
    for index in sorted(indices):
        example = encoder.encode(table.slice(index, 1).to_pylist()[0])
        grid = example.images.get("image_grid_thw")
        patches = int(grid.prod()) if grid is not None else 0
        costs[index] = {"tokens": example.length, "targets": example.n_target_tokens, "patches": patches,
                        "flops": flop_model.per_example(example.length, example.n_target_tokens, patches)}
    return costs


# ------------------------------------------------------------------------------------------
# Collecting the loop's windows
class BudgetReached(Exception):
    pass


class Recorder:
    """Metrics sink of the plain path: keeps each window; stops the run past its deadline."""

    def __init__(self, deadline: float) -> None:
        self.windows: list[dict] = []
        self.deadline = deadline

    def __call__(self, metrics, step: int) -> None:
        self.windows.append({"step": step, **metrics})
        if time.monotonic() > self.deadline:
            raise BudgetReached(f"time budget reached at step {step}")


@dataclass(frozen=True)
class JsonlSink:
    """Metrics sink of the Ray path (runs in the worker): one JSON line per window."""

    path: str

    def __call__(self, metrics, step: int) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")


@dataclass
class PathResult:
    name: str
    wall_s: float = 0.0
    steps: int = 0
    windows: list[dict] = field(default_factory=list)

    def summary(self, log_every: int, step_flops: dict[int, float], peak: float | None) -> dict:
        measured = [w for w in self.windows if "train/tokens_per_s" in w and w["step"] > log_every]
        seconds = sum(w["train/step_time_s"] * log_every for w in measured)
        tokens = sum(w["train/tokens_per_s"] * w["train/step_time_s"] * log_every for w in measured)
        flops = sum(step_flops[s] for w in measured for s in range(w["step"] - log_every + 1, w["step"] + 1))
        peaks = [w["train/peak_memory_gb"] for w in self.windows if "train/peak_memory_gb" in w]
        return {
            "steps": self.steps, "measured_steps": len(measured) * log_every,
            "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
            "step_time_s": round(seconds / (len(measured) * log_every), 4) if measured else None,
            "model_tflops_per_s": round(flops / seconds / 1e12, 2) if seconds else None,
            "mfu": round(flops / seconds / peak, 4) if seconds and peak else None,
            "peak_memory_gib": round(max(peaks), 2) if peaks else None,
            "wall_s_with_startup": round(self.wall_s, 1),
            "final_loss": self.windows[-1].get("train/loss") if self.windows else None,
        }


# ------------------------------------------------------------------------------------------
def run_ray_path(spec: ModelSpec, settings: TrainSettings, table, steps: int,
                 device: torch.device, work: Path) -> PathResult:
    """``steps`` optimizer steps through Ray Train on one worker (one GPU, or all CPUs)."""
    import ray

    from crossmath.finetuning.ray_trainer import fit, share_examples
    from crossmath.finetuning.scaling import RayScaling

    cpus = os.cpu_count() or 1
    # The workers import crossmath from this checkout; whatever PYTHONPATH already holds (Ray
    # itself, where it is not installed but unpacked) must stay on it, or no worker can start.
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=cpus, num_gpus=1 if device.type == "cuda" else 0, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": python_path}})
    try:
        sink = JsonlSink(str(work / "ray-metrics.jsonl"))
        job = TrainJob(spec, replace(settings, max_steps=steps), share_examples(table), sink)
        result = fit(job, RayScaling(num_workers=1, use_gpu=device.type == "cuda", cpus_per_worker=cpus),
                     storage_path=work / "ray", name="bench")
    finally:
        ray.shutdown()
    windows = [json.loads(line) for line in Path(sink.path).read_text().splitlines()]
    return PathResult("ray", steps=int(result.metrics["final_step"]), windows=windows)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_flops(args: argparse.Namespace, device: torch.device) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in DENSE_BF16_PEAK.items() if key in name), None)


def watchdog(budget_s: float, report: dict, out_path: Path | None) -> None:
    """Writes what there is and ends the process if the run overstays its budget."""
    def fire() -> None:
        time.sleep(budget_s)
        report["status"] = f"stopped by the watchdog at {budget_s:.0f} s"
        write_report(report, out_path)
        print(json.dumps(report, indent=1), flush=True)
        os._exit(3)

    threading.Thread(target=fire, daemon=True).start()


def machine_info(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """What a report records about where and how it ran."""
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "shape": "tiny" if args.tiny else "Qwen2.5-VL-3B",
        "args": dict(vars(args))}


def write_report(report: dict, out_path: Path | None) -> None:
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.monotonic()
    out_path = Path(os.environ["OUT"]) / "train_gpu.json" if os.environ.get("OUT") else None
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    report: dict[str, Any] = {"status": "running", "info": machine_info(args, device)}
    watchdog(args.time_budget_s, report, out_path)
    work = Path(tempfile.mkdtemp(prefix="train-gpu-"))  # the saved model: gigabytes, removed after
    try:
        return run(args, report, device, dtype, work, started, out_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, report: dict, device: torch.device, dtype: torch.dtype, work: Path,
        started: float, out_path: Path | None) -> dict:
    tiny_folder = build_tiny_random(args.cache_dir)
    processor = load_processor(tiny_folder)
    model_folder = work / "model"
    config = save_random_model(TINY if args.tiny else QWEN25_VL_3B, processor, model_folder, device, dtype)
    report["info"]["model_build_s"] = round(time.monotonic() - started, 1)

    training_set = build_training_set(
        TrainingSetSpec(n_puzzles=args.puzzles, seed=2024, styles=("original", "noborder"),
                        target=args.target), work / "data")
    table, _ = split_validation(training_set.read(), 0.0)  # the row order the loop uses
    spec = bench_model_spec(model_folder, args.max_pixels)
    settings = TrainSettings(
        lora=LoraSettings(rank=16, alpha=32, dropout=0.05), lr=2e-4, batch_size=args.batch_size,
        grad_accumulation=1, epochs=1000, max_steps=args.steps, precision="auto",
        gradient_checkpointing=not args.no_gradient_checkpointing, checkpoint_every=0,
        keep_checkpoints=1, eval_every=0, log_every=args.log_every, validation_fraction=0.0,
        loader_threads=args.loader_threads, seed=0)
    print(f"train_gpu: {report['info']['device']}, model built in {report['info']['model_build_s']} s, "
          f"{table.num_rows} examples", flush=True)

    # plain: the loop in this process, stopped early if it would not leave the Ray path its share
    remaining = args.time_budget_s - (time.monotonic() - started)
    recorder = Recorder(deadline=time.monotonic() + 0.35 * remaining)
    plain = PathResult("plain")
    tick = time.monotonic()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        summary = train_locally(TrainJob(spec, settings, lambda: table, recorder),
                                work / "plain", device=str(device))
        plain.steps = summary["final_step"]
    except BudgetReached as stop:
        print(f"plain: {stop}", flush=True)
        plain.steps = recorder.windows[-1]["step"]
    plain.wall_s, plain.windows = time.monotonic() - tick, recorder.windows
    free_memory(device)
    if plain.steps < 2 * args.log_every:
        raise SystemExit(f"the plain loop did only {plain.steps} steps in its share of the budget; "
                         "raise --time-budget-s or lower --batch-size")

    # the FLOPs of the examples the steps used (the Ray path runs the same steps)
    schedule = Schedule(table.num_rows, 1, settings.batch_size, 1, settings.epochs, plain.steps,
                        settings.seed)
    plan = {step + 1: sum(schedule.micro_batches(step, 0), []) for step in range(plain.steps)}
    encoder = ExampleEncoder(processor, spec)
    costs = example_costs(table, {i for used in plan.values() for i in used}, encoder,
                          FlopModel(config, settings.lora.rank))
    step_flops = {step: sum(costs[i]["flops"] for i in used) for step, used in plan.items()}
    used = list(costs.values())
    report["info"]["examples_used"] = {
        "count": len(used), "mean_tokens": round(sum(c["tokens"] for c in used) / len(used), 1),
        "max_tokens": max(c["tokens"] for c in used),
        "mean_target_tokens": round(sum(c["targets"] for c in used) / len(used), 1),
        "mean_image_patches": round(sum(c["patches"] for c in used) / len(used), 1)}
    peak = peak_flops(args, device)
    report["plain"] = plain.summary(args.log_every, step_flops, peak)
    write_report(report, out_path)  # the baseline is kept even if the Ray path fails

    # ray: the same steps through Ray Train
    tick = time.monotonic()
    try:
        ray_path = run_ray_path(spec, settings, table, plain.steps, device, work)
    except Exception as error:  # recorded with the plain numbers before it propagates
        report.update(status=f"ray path failed: {type(error).__name__}: {error}"[:2000])
        write_report(report, out_path)
        print(json.dumps(report, indent=1), flush=True)
        raise
    ray_path.wall_s = time.monotonic() - tick
    report["ray"] = ray_path.summary(args.log_every, step_flops, peak)
    ratio = None
    if report["plain"]["tokens_per_s"] and report["ray"]["tokens_per_s"]:
        ratio = round(report["ray"]["tokens_per_s"] / report["plain"]["tokens_per_s"], 3)
    # Same data, seeds and steps: the two paths must have trained the same (up to GPU kernels'
    # non-determinism), which also shows the Ray path did the same work.
    losses = {name: {w["step"]: w["train/loss"] for w in path.windows if "train/loss" in w}
              for name, path in (("plain", plain), ("ray", ray_path))}
    common = sorted(set(losses["plain"]) & set(losses["ray"]))
    report["loss_max_abs_diff"] = max((abs(losses["plain"][s] - losses["ray"][s]) for s in common),
                                      default=None)
    report.update(status="done", ratio_ray_vs_plain=ratio, target_ratio=0.95,
                  meets_target=None if ratio is None else ratio >= 0.95,
                  peak_dense_bf16_tflops=None if peak is None else peak / 1e12,
                  total_s=round(time.monotonic() - started, 1))
    write_report(report, out_path)
    print(json.dumps(report, indent=1), flush=True)
    if out_path:
        print(f"results: {out_path}")
    return report


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    main()
