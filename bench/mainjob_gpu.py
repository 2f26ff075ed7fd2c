"""The main job on one GPU against its own backend, on the same requests, in one run (issue #13.5).

    python bench/mainjob_gpu.py --tiny                # CPU smoke run: its timings mean nothing
    python bench/mainjob_gpu.py --time-budget-s 300   # one GPU

The model is a random-weight Qwen2.5-VL-3B shape (``bench/shapes.py``, nothing downloaded; the
tiny model's tokenizer and image processor) behind crossmath's hf backend, with forced output
lengths (``bench/infer_gpu.py``'s ``ForcedLengths``: each sequence ends at a lognormal length
drawn per prompt and sample, the same in both runs). The work is the main job's: N generated
puzzles x {text, image, hybrid} x the original style x 4 sampled answers, the release's protocol.

1. backend  the calls the main job will make (planned by ``crossmath.pipeline.calls`` from the
            same config), images rendered beforehand, each answered by ``generate`` in this
            process, back to back: the ceiling
2. main job ``python -m crossmath.run`` with the same model config (a YAML in a scratch config
            folder, found through ``hydra.searchpath``): Ray Data, a render actor, one inference
            actor on the GPU, prediction shards, MLflow

The backend logs each call (start, end, requests, output tokens) in both. Reported per side:
output tokens per second over the backend's busy span (first call's start to last call's end),
the gaps between calls, and for the main job the command's whole wall time. The bar: the main
job at least 0.9x the backend's tokens/s. Both must produce the same output tokens (same work).
Results go to ``$OUT/mainjob_gpu.json`` when OUT is set.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import pyarrow.parquet as pq
import torch
from call_log import busy  # (bench/call_log.py)
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from infer_gpu import ForcedLengths, build_model, drawn_length  # (bench/infer_gpu.py)
from omegaconf import OmegaConf
from shapes import QWEN25_VL_3B, TINY  # (bench/shapes.py)

from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.call_log import append_call, read_call_log
from crossmath.models.config import backend_arguments
from crossmath.models.hf import HFBackend
from crossmath.models.processor import load_processor
from crossmath.models.tiny import build_tiny_random
from crossmath.pipeline.calls import call_requests, call_table, plan_calls
from crossmath.pipeline.dataflow import StageResources
from crossmath.pipeline.render_stage import RenderImages
from crossmath.settings.checks import resolved_prompt_set, resolved_styles
from crossmath.tasks.crossmath.requests import RequestPlan
from crossmath.tasks.crossmath.sources import load_puzzles

BENCH = Path(__file__).resolve().parent
SHAPES = {"3b": QWEN25_VL_3B, "tiny": TINY}
# CPUs for the host work of a call (image processing) on a GPU machine, on both sides: the
# inference actor's resources.infer_cpus (Ray sets its thread count from it) and this process.
GPU_HOST_THREADS = 8
MODEL_NAME = "bench-forced"  # the config file's name in the scratch config folder


class LoggedCalls:
    """A backend that appends each ``generate`` call to a call log: output tokens, and the time
    before its first decode step (chat template, image decoding and processing, moving the
    inputs to the GPU: the host work during which the GPU waits), read off ``ForcedLengths``."""

    def __init__(self, backend: HFBackend, call_log: str, forced: list[ForcedLengths]) -> None:
        self.backend, self.name = backend, backend.name
        self.call_log, self.forced = call_log, forced

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        started, clock = time.time(), time.perf_counter()
        self.forced.clear()
        responses = self.backend.generate(requests)
        _synchronize()
        append_call(self.call_log, started, requests=len(requests),
                    output_tokens=sum(r.n_output_tokens for r in responses),
                    errors=sum(r.error is not None for r in responses),
                    generates=len(self.forced),
                    preprocess_s=self.forced[0].created_at - clock if self.forced else None)
        return responses


def forced_length_backend(*, name: str, shape: str, call_log: str, median_new_tokens: int,
                          sigma: float, max_new_tokens: int, cache_dir: str | None = None,
                          **settings) -> LoggedCalls:
    """The hf backend on a random model of ``shape`` whose outputs end at drawn lengths; what the
    model config's ``_target_`` names, so the main job's inference actor builds the same."""
    processor = load_processor(build_tiny_random(cache_dir))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build_model(SHAPES[shape], processor, device, dtype)
    tokenizer = processor.tokenizer
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id
    forced: list[ForcedLengths] = []  # one per generate batch of the current call

    def draw(prompt_ids: list[int], sample: int) -> int:
        return drawn_length(prompt_ids, sample, median_new_tokens, sigma, max_new_tokens)

    def logits_processors() -> list:
        forced.append(ForcedLengths(eos, pad, draw))
        return [forced[-1]]

    backend = HFBackend(model, processor=processor, name=name, device=str(device),
                        max_new_tokens=max_new_tokens, logits_processor_factory=logits_processors,
                        **settings)
    return LoggedCalls(backend, call_log, forced)


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU: a smoke test")
    parser.add_argument("--time-budget-s", type=float, default=None)
    parser.add_argument("--puzzles", type=int, default=None)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per call")
    parser.add_argument("--median-new-tokens", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cap of the drawn lengths")
    parser.add_argument("--sigma", type=float, default=0.35)
    args = parser.parse_args(argv)
    defaults = (dict(time_budget_s=600.0, puzzles=4, batch_size=4, median_new_tokens=8,
                     max_new_tokens=16) if args.tiny else
                dict(time_budget_s=300.0, puzzles=16, batch_size=64, median_new_tokens=256,
                     max_new_tokens=512))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def model_config(args: argparse.Namespace, call_log: Path) -> dict:
    """The model config both sides use: qwen2.5-vl-3b's settings, sampling as the release."""
    return {
        "_target_": "mainjob_gpu.forced_length_backend", "name": MODEL_NAME,
        "prompt": "crossmath-v1", "shape": "tiny" if args.tiny else "3b",
        "batch_size": args.batch_size, "sampling": "config", "temperature": 1.0, "top_p": 0.95,
        "min_pixels": 200704, "max_pixels": 1003520, "seed": 0,
        "median_new_tokens": args.median_new_tokens, "sigma": args.sigma,
        "max_new_tokens": args.max_new_tokens, "call_log": str(call_log),
    }


def run_overrides(args: argparse.Namespace, work: Path) -> list[str]:
    """The main job's overrides, but for the model (a config group file, see ``main``)."""
    on_gpu = [f"resources.infer_cpus={GPU_HOST_THREADS}", "resources.infer_gpus=1"]
    return [f"data.n={args.puzzles}", "styles=[original]", f"samples={args.samples}",
            f"out_dir={work / 'run'}", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
            *(on_gpu if torch.cuda.is_available() else [])]


def backend_alone(args: argparse.Namespace, work: Path) -> Path:
    """Answer the main job's calls with the backend in this process; returns the call log."""
    log = work / "backend-calls.jsonl"
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("run", overrides=run_overrides(args, work))
    config = model_config(args, log)
    cfg.model = OmegaConf.create(config)
    styles = resolved_styles(list(cfg.styles))
    puzzle_set = load_puzzles(cfg.data, styles)
    plan = RequestPlan(list(cfg.modalities), styles, cfg.samples,
                       resolved_prompt_set(cfg.model.prompt, "model.prompt"), cfg.model.name)
    capacity = StageResources(**OmegaConf.to_container(cfg.resources)).call_capacity(config)
    render = RenderImages(styles)
    rendered = [render(call_table(call)).to_pylist()[0]
                for call in plan_calls(plan.units(puzzle_set.puzzles), capacity, styles)]
    calls = [[ModelRequest.from_row(row) for row in call_requests(call)] for call in rendered]
    print(f"backend alone: {sum(map(len, calls))} requests in {len(calls)} calls", flush=True)
    if torch.cuda.is_available():
        torch.set_num_threads(GPU_HOST_THREADS)
    backend = instantiate(backend_arguments(config))
    for requests in calls:
        backend.generate(requests)
    del backend
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return log


def main_job(args: argparse.Namespace, work: Path, timeout_s: float) -> tuple[Path, float]:
    """``python -m crossmath.run`` on the same work; returns its call log and wall time."""
    log = work / "main-calls.jsonl"
    folder = work / "conf" / "model"
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(model_config(args, log)), folder / f"{MODEL_NAME}.yaml")
    inherited = os.environ.get("PYTHONPATH")
    path = os.pathsep.join([str(BENCH)] + ([inherited] if inherited else []))  # mainjob_gpu itself
    command = [sys.executable, "-m", "crossmath.run", f"hydra.searchpath=[file://{work / 'conf'}]",
               f"model={MODEL_NAME}", *run_overrides(args, work)]
    print("main job:", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env={**os.environ, "PYTHONPATH": path,
                                                  "RAY_AUTH_MODE": "disabled"},
                          capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - started
    (work / "main-job.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"the main job failed ({done.returncode}):\n{output}")
    return log, wall


def side(log: Path) -> dict:
    calls = read_call_log(log)
    seen = busy(calls)
    tokens = sum(call["output_tokens"] for call in calls)
    busy_s = sum(call["ended"] - call["started"] for call in calls)
    preprocess_s = sum(call["preprocess_s"] or 0.0 for call in calls)
    return {"calls": seen.calls, "median_requests": seen.median_requests,
            "generates": sum(call["generates"] for call in calls),
            "output_tokens": tokens, "errors": sum(call["errors"] for call in calls),
            "busy_span_s": round(seen.span_s, 2), "tokens_per_s": round(tokens / seen.span_s, 1),
            "max_gap_s": round(seen.max_gap_s, 3), "mean_gap_s": round(seen.mean_gap_s, 3),
            # host work before each call's first decode step, the GPU idle meanwhile
            "preprocess_share": round(preprocess_s / busy_s, 3)}


def write(results: dict) -> None:
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "mainjob_gpu.json").write_text(json.dumps(results, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mainjob-gpu-"))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"mainjob_gpu: {device}, {args.puzzles} puzzles x 3 modalities x {args.samples} samples, "
          f"{args.batch_size} sequences a call, lengths lognormal(median {args.median_new_tokens}) "
          f"capped at {args.max_new_tokens}", flush=True)
    results: dict = {"device": device, "args": vars(args)}
    backend = side(backend_alone(args, work))
    results["backend"] = backend
    print("backend: ", json.dumps(backend), flush=True)
    write(results)  # kept if the main job fails
    log, wall = main_job(args, work, timeout_s=args.time_budget_s - (time.perf_counter() - started))
    job = {**side(log), "command_wall_s": round(wall, 1)}
    results["main_job"] = job
    print("main job:", json.dumps(job), flush=True)
    predictions = pq.read_table(work / "run" / "predictions.parquet")
    same_work = (job["output_tokens"] == backend["output_tokens"]
                 == sum(predictions.column("n_output_tokens").to_pylist()))
    results["ratio"] = round(job["tokens_per_s"] / backend["tokens_per_s"], 3)
    results["same_work"] = same_work
    print(f"main job / backend tokens/s: {results['ratio']} (bar 0.9"
          f"{'; tiny CPU smoke run: timings mean nothing' if args.tiny else ''}); same output "
          f"tokens on both sides and in the predictions: {same_work}", flush=True)
    write(results)
    if not same_work or job["errors"] or backend["errors"]:
        raise SystemExit("the two sides did not do the same work without errors")


if __name__ == "__main__":
    main()
