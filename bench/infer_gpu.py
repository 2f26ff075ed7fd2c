"""Inference throughput on one GPU: the CrossMath release's loop against crossmath's hf backend.

The release answers one puzzle per ``generate`` call with 4 sampled sequences. This script
builds a random-weight model with the shape of Qwen2.5-VL-3B from a config (nothing is
downloaded), feeds it hybrid prompts of the benchmark's size (a 616x700 image, ~700 text
tokens), and forces realistic output lengths: every sequence is as long as a length drawn
from a lognormal around ~1,000 tokens, the same draw for the same (puzzle, sample) in every
variant (the loop ends each sequence with EOS there; the backend caps each request there, with
``ModelRequest.max_new_tokens``, and never lets EOS through before). In one run it measures:

  probe      ms per decode step of one batch, transformers' "sdpa" against crossmath's
             "sdpa_gqa" attention (short fixed outputs, so cheap)
  loop       the release's pattern: per puzzle, generate(num_return_sequences=4, sampling)
  dynamic    crossmath.models.hf.HFBackend, keyed sampling, puzzles batched with left padding,
             every sample prefilled on its own (transformers' expand-then-prefill), growing
             KV cache; rows leave the batch when they end
  shared     the same with one prefill per puzzle, expanded to its 4 samples (the default)
  static     shared prefill and a static KV cache in bucketed sizes, not compiled
  compiled   static KV cache and the decode step compiled by torch.compile (CUDA graphs), once
             per backend, one graph per (rows, cache length) bucket; a warm-up call on the same
             requests compiles first, and compile_s reports it
  cb         transformers' continuous batching (``init_continuous_batching``). In transformers
             5.17 it takes token ids only (no images), so it runs on text-only stand-ins of the
             same prompts, same lengths: an upper bound for what it would give a VLM

Per variant it prints useful tokens/s (forced lengths only), puzzles/s, decode ms/step, prefill
s, peak GPU memory, slot use (useful tokens over the row-steps computed) and the ratio to the
loop. Variants run in order and each is skipped
if its estimated time does not fit in what is left of ``--time-budget-s``; a watchdog stops the
run at the budget. Results go to ``$OUT/infer_gpu.json`` (when OUT is set) after every variant.

    python bench/infer_gpu.py --tiny               # CPU, tiny model, under a minute
    python bench/infer_gpu.py --time-budget-s 480  # one GPU
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import math
import os
import platform
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import transformers
from PIL import Image, ImageDraw
from shapes import QWEN25_VL_3B, TINY, qwen25_vl_config  # (bench/shapes.py)
from transformers import (
    AutoModelForImageTextToText,
    ContinuousBatchingConfig,
    GenerationConfig,
    LogitsProcessor,
)

from crossmath.models.attention import register_sdpa_gqa
from crossmath.models.base import ModelRequest
from crossmath.models.hf import HFBackend
from crossmath.models.processor import load_processor
from crossmath.models.prompts import (
    DEFAULT_PROMPT,
    chat_messages,
    load_prompt_template,
    puzzle_layout,
)
from crossmath.models.tiny import build_tiny_random

# The hf backend's variants: what each one is, and its options.
BACKEND_VARIANTS = {
    "dynamic": ("every sample prefilled on its own, growing KV cache", {"shared_prefill": False}),
    "shared": ("one prefill per puzzle expanded to its samples, growing KV cache", {}),
    "static": ("shared prefill, static KV cache (bucketed), not compiled", {"kv_cache": "static"}),
    "compiled": ("shared prefill, static KV cache, decode step compiled (CUDA graphs)",
                 {"kv_cache": "static", "compile": True}),
}
VARIANTS = ("probe", "loop", *BACKEND_VARIANTS, "cb")
GPU_PLAN = "probe:64,loop:1,shared:64,compiled:64,static:64,dynamic:64,cb:128"
TINY_PLAN = "probe:4,loop:2,shared:4,dynamic:4,static:4,compiled:4,cb:8"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU, small sizes: a smoke test")
    parser.add_argument("--variants", default=None,
                        help=f"comma list of variant:puzzles, run in this order (GPU default {GPU_PLAN})")
    parser.add_argument("--time-budget-s", type=float, default=None, help="whole run, model build included")
    parser.add_argument("--samples", type=int, default=4, help="sampled answers per puzzle (release: 4)")
    parser.add_argument("--median-new-tokens", type=int, default=None)
    parser.add_argument("--sigma", type=float, default=0.35, help="lognormal sigma of output lengths")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cap of the drawn lengths")
    parser.add_argument("--prompt-tokens", type=int, default=None, help="text tokens per prompt (about)")
    parser.add_argument("--image-size", default=None, help="WxH of each puzzle image")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None, help="where the tiny tokenizer/processor is built")
    args = parser.parse_args(argv)
    defaults = (
        dict(variants=TINY_PLAN, median_new_tokens=12, max_new_tokens=24, prompt_tokens=120,
             image_size="112x140", time_budget_s=120.0)
        if args.tiny else
        dict(variants=GPU_PLAN, median_new_tokens=1000, max_new_tokens=2048, prompt_tokens=700,
             image_size="616x700", time_budget_s=480.0)
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    plan = []
    for item in args.variants.split(","):
        name, _, puzzles = item.strip().partition(":")
        if name not in VARIANTS or not puzzles.isdigit() or int(puzzles) < 1:
            parser.error(f"variant {item!r}: expected NAME:PUZZLES with NAME in {VARIANTS}")
        plan.append((name, int(puzzles)))
    args.plan = plan
    args.image_size = tuple(int(x) for x in args.image_size.lower().split("x"))
    return args


# ------------------------------------------------------------------------------------------
# Forced output lengths
def drawn_length(prompt_ids: list[int], sample: int, median: int, sigma: float, cap: int) -> int:
    """The output length of one (prompt, sample): lognormal, seeded by the prompt's tokens."""
    digest = hashlib.sha1(np.asarray(prompt_ids, dtype=np.int64).tobytes()).digest()
    rng = np.random.default_rng([int.from_bytes(digest[:8], "little"), sample])
    return int(min(cap, max(1, round(median * math.exp(sigma * rng.standard_normal())))))


class ForcedLengths(LogitsProcessor):
    """For the release's loop: ends each row with EOS at its drawn length (and never earlier);
    also times the call.

    Rows are identified by their prompt tokens (left padding stripped); rows with the same prompt
    are that prompt's samples 0, 1, ... in order, as ``num_return_sequences`` lays them out.
    """

    def __init__(self, eos_id: int, pad_id: int, draw: Callable[[list[int], int], int]) -> None:
        self.eos_id, self.pad_id, self.draw = eos_id, pad_id, draw
        self.lengths: torch.Tensor | None = None
        self.prompt_len = 0
        self.created_at = time.perf_counter()
        self.first_call_at: float | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.lengths is None:
            _synchronize(scores.device)
            self.first_call_at = time.perf_counter()
            self.prompt_len = input_ids.shape[1]
            self.lengths = torch.tensor(self._row_lengths(input_ids.tolist()), device=scores.device)
        step = input_ids.shape[1] - self.prompt_len  # tokens generated before this one
        force = (self.lengths == step + 1)[:, None]
        scores = scores.masked_fill(force, float("-inf"))
        scores[:, self.eos_id] = torch.where(force[:, 0], 0.0, float("-inf"))
        return scores

    def _row_lengths(self, rows: list[list[int]]) -> list[int]:
        seen: dict[tuple[int, ...], int] = {}
        lengths = []
        for row in rows:
            start = next((i for i, t in enumerate(row) if t != self.pad_id), len(row))
            key = tuple(row[start:])
            sample = seen.get(key, 0)
            seen[key] = sample + 1
            lengths.append(self.draw(list(key), sample))
        return lengths


class NoEos(LogitsProcessor):
    """For the backend: EOS never wins, so each request decodes exactly to its cap."""

    def __init__(self, eos_id: int) -> None:
        self.eos_id = eos_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores[:, self.eos_id] = float("-inf")
        return scores


# ------------------------------------------------------------------------------------------
# Model, prompts, requests
def build_model(dims: dict, processor: Any, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    tokenizer = processor.tokenizer
    ids = tokenizer.convert_tokens_to_ids
    config = qwen25_vl_config(dims, tokenizer)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    model.generation_config.eos_token_id = ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def make_requests(n_puzzles: int, samples: int, prompt_tokens: int, image_size: tuple[int, int],
                  processor: Any, seed: int) -> list[ModelRequest]:
    """Hybrid requests: random grids sized to ``prompt_tokens`` text tokens, one image each."""
    template = load_prompt_template(DEFAULT_PROMPT)
    rng = random.Random(seed)
    requests = []
    for p in range(n_puzzles):
        rows: list[str] = []
        image = _grid_image(image_size, rng)
        while True:
            rows.append(_grid_row(rng, 11))
            prompt = puzzle_layout(template, "hybrid", "\n".join(rows), 0, (0, 0)).with_image(image)
            if len(processor.tokenizer(prompt.text)["input_ids"]) >= prompt_tokens or len(rows) > 500:
                break
        requests += [ModelRequest(f"p{p}/s{s}", prompt, sample=s, modality="hybrid",
                                  grid_markdown="\n".join(rows)) for s in range(samples)]
    return requests


def _grid_row(rng: random.Random, width: int) -> str:
    cells = [str(rng.randint(0, 250)) if rng.random() < 0.45 else rng.choice("+-×÷=? ")
             for _ in range(width)]
    return "| " + " | ".join(cells) + " |"


def _grid_image(size: tuple[int, int], rng: random.Random) -> bytes:
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 55):
        for y in range(0, height, 55):
            if rng.random() < 0.6:
                draw.rectangle([x, y, x + 54, y + 54], fill=(218, 232, 245), outline="black")
                draw.text((x + 18, y + 20), str(rng.randint(0, 99)), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------
# Bookkeeping
@dataclass
class Result:
    variant: str
    what: str
    status: str = "ok"  # ok | skipped | error | stopped
    note: str = ""
    puzzles: int = 0
    sequences: int = 0
    useful_tokens: int = 0
    steps: int = 0  # decode steps run (the longest sequence of each generate call, summed)
    wall_s: float = 0.0
    prefill_s: float | None = None
    decode_ms_per_step: float | None = None
    tokens_per_s: float = 0.0
    puzzles_per_s: float = 0.0
    slot_use: float = 0.0  # useful tokens / (sequences x steps): what static batching wastes
    peak_gib: float = 0.0
    ratio_vs_loop: float | None = None
    compile_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Bench:
    """One run: the model, processor and requests, the clock, the results file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.perf_counter()
        self.deadline = self.started + args.time_budget_s
        self.device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.out_path = Path(os.environ["OUT"]) / "infer_gpu.json" if os.environ.get("OUT") else None
        self.results: list[Result] = []
        self.info: dict[str, Any] = {}
        self.current = "setup"
        self.probe: dict[str, float] = {}
        self._prompt_ids: dict[str, list[int]] = {}
        self.lock = threading.RLock()
        self.template = load_prompt_template(DEFAULT_PROMPT)
        self.min_pixels, self.max_pixels = 4 * 28 * 28, 16384 * 28 * 28  # the image keeps its size
        self.size_kwargs = {"size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}}

    def setup(self) -> None:
        a = self.args
        register_sdpa_gqa()
        self.processor = load_processor(build_tiny_random(a.cache_dir))
        self.eos_id = self.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.pad_id = self.processor.tokenizer.pad_token_id
        start = time.perf_counter()
        self.model = build_model(TINY if a.tiny else QWEN25_VL_3B, self.processor, self.device, self.dtype)
        _synchronize(self.device)
        build_s = time.perf_counter() - start
        n_puzzles = max(n for _, n in a.plan)
        self.requests = make_requests(n_puzzles, a.samples, a.prompt_tokens, a.image_size,
                                      self.processor, a.seed)
        first = self.prompt_ids(self.requests[0])
        image_id = self.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        lengths = self.lengths(self.puzzles(n_puzzles))
        per_puzzle_max = [max(lengths[i:i + a.samples]) for i in range(0, len(lengths), a.samples)]
        self.info = {
            "device": (torch.cuda.get_device_name(0) if self.device.type == "cuda"
                       else platform.processor() or "cpu"),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "dtype": str(self.dtype),
            "flash_attn_2_available": transformers.utils.is_flash_attn_2_available(),
            "model": "tiny Qwen2.5-VL" if a.tiny else "Qwen2.5-VL-3B-shaped, random weights",
            "parameters_b": round(sum(p.numel() for p in self.model.parameters()) / 1e9, 3),
            "build_s": round(build_s, 1),
            "prompt_tokens": len(first), "image_tokens": first.count(image_id),
            "output_length_mean": round(float(np.mean(lengths)), 1),
            "output_length_max": max(lengths),
            "mean_longest_of_samples": round(float(np.mean(per_puzzle_max)), 1),
        }
        print("setup:", json.dumps(self.info), flush=True)

    # -- clock and output ----------------------------------------------------------------------
    def left_s(self) -> float:
        return self.deadline - time.perf_counter()

    def add(self, result: Result) -> Result:
        with self.lock:
            loop = next((r for r in self.results if r.variant == "loop" and r.status == "ok"), None)
            comparable = result.status == "ok" and not result.variant.startswith("probe")
            if loop and comparable and result.tokens_per_s:
                result.ratio_vs_loop = round(result.tokens_per_s / loop.tokens_per_s, 2)
            self.results.append(result)
            print_row(result)
            self.write()
        return result

    def write(self) -> None:
        if self.out_path is None:
            return
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"info": self.info, "args": vars(self.args), "results": [asdict(r) for r in self.results],
                   "elapsed_s": round(time.perf_counter() - self.started, 1)}
        self.out_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")

    def start_watchdog(self) -> None:
        def stop() -> None:
            with self.lock:
                print(f"\n!! time budget of {self.args.time_budget_s:.0f} s reached during "
                      f"{self.current}: stopped there; finished variants are kept", flush=True)
                self.results.append(Result(self.current, "", status="stopped", note="time budget reached"))
                self.write()
                print_summary(self)
                sys.stdout.flush()
                os._exit(0)

        timer = threading.Timer(max(1.0, self.left_s()), stop)
        timer.daemon = True
        timer.start()

    def fits(self, result: Result, estimate_s: float | None) -> bool:
        """Whether a variant estimated at ``estimate_s`` fits in the time left; if not, record a skip."""
        if estimate_s is None or estimate_s < self.left_s() - 5:
            return True
        result.status = "skipped"
        result.note = f"estimated {estimate_s:.0f} s, {self.left_s():.0f} s left (5 s kept in reserve)"
        self.add(result)
        return False

    def estimate_s(self, attn: str, rows: int, steps: int) -> float | None:
        """Time of one batch from the probe: per-row prefill, per-step decode scaled by rows."""
        if attn not in self.probe:  # no probe run: no estimate
            return None
        probe_rows = self.probe["rows"]
        ms_step = self.probe[attn] * (0.4 + 0.6 * rows / probe_rows) * 1.3  # longer contexts
        return self.probe[f"{attn}-prefill"] * rows / probe_rows + steps * ms_step / 1000

    # -- helpers -------------------------------------------------------------------------------
    def draw(self, prompt_ids: list[int], sample: int) -> int:
        a = self.args
        return drawn_length(prompt_ids, sample, a.median_new_tokens, a.sigma, a.max_new_tokens)

    def backend(self, sequences: int, attn: str, **options: Any) -> HFBackend:
        """The hf backend on the bench's model: keyed sampling at the bench's settings, EOS
        suppressed (each request decodes to its cap)."""
        a = self.args
        return HFBackend(
            self.model, processor=self.processor, name="bench", attn_implementation=attn,
            device=str(self.device), min_pixels=self.min_pixels, max_pixels=self.max_pixels,
            max_new_tokens=a.max_new_tokens, sampling="config", temperature=a.temperature,
            top_k=0, top_p=a.top_p, batch_size=sequences, seed=a.seed,
            logits_processor_factory=lambda: [NoEos(self.eos_id)], **options,
        )

    def chat(self, request: ModelRequest) -> tuple[str, Image.Image]:
        prompt = request.prompt
        text = self.processor.apply_chat_template(chat_messages(prompt), add_generation_prompt=True,
                                                  tokenize=False)
        return text, Image.open(io.BytesIO(prompt.images[0])).convert("RGB")

    def prompt_ids(self, request: ModelRequest) -> list[int]:
        """The token ids the backend feeds for a request's puzzle, image tokens expanded."""
        puzzle = request.request_id.split("/")[0]
        if puzzle not in self._prompt_ids:
            text, image = self.chat(request)
            inputs = self.processor(text=[text], images=[image], **self.size_kwargs)
            self._prompt_ids[puzzle] = list(inputs["input_ids"][0])
        return self._prompt_ids[puzzle]

    def lengths(self, requests: list[ModelRequest]) -> list[int]:
        """The forced output length of each request."""
        return [self.draw(self.prompt_ids(request), request.sample) for request in requests]

    @staticmethod
    def capped(requests: list[ModelRequest], lengths: list[int]) -> list[ModelRequest]:
        """The requests, each capped at its length."""
        return [replace(r, max_new_tokens=n) for r, n in zip(requests, lengths)]

    def puzzles(self, n: int) -> list[ModelRequest]:
        return self.requests[: n * self.args.samples]

    def reset_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float:
        return round(torch.cuda.max_memory_allocated() / 2**30, 1) if self.device.type == "cuda" else 0.0


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_backend(bench: Bench, backend: HFBackend, requests: list[ModelRequest],
                 result: Result, lengths: list[int]) -> Result:
    """Time one ``backend.generate`` of ``requests`` capped at ``lengths`` and fill ``result``
    from the decode loop's own statistics. A compiled step's first call at a new shape is
    counted in ``compile_s`` and left out of the decode time."""
    _synchronize(bench.device)
    start = time.perf_counter()
    responses = backend.generate(bench.capped(requests, lengths))
    _synchronize(bench.device)
    wall = time.perf_counter() - start
    stats = backend.last_stats
    steps = sum(s.steps for s in stats)
    compile_s = sum(sum(s.compile_s.values()) for s in stats)
    decode_s = sum(s.decode_s for s in stats) - compile_s
    result.puzzles, result.sequences = len(requests) // bench.args.samples, len(requests)
    result.useful_tokens, result.steps, result.wall_s = sum(lengths), steps, round(wall, 2)
    result.prefill_s = round(sum(s.prefill_s for s in stats), 2)
    result.decode_ms_per_step = round(1000 * decode_s / max(1, steps), 2)
    result.compile_s = round(compile_s, 1) if backend.decoder.compiled else None
    if len(stats) > 1:
        result.note = f"{len(stats)} batches (out of memory: batch halved to {backend.batch_size})"
    result.tokens_per_s = round(result.useful_tokens / wall, 1)
    result.puzzles_per_s = round(result.puzzles / wall, 4)
    result.slot_use = round(result.useful_tokens / max(1, sum(s.slot_steps for s in stats)), 3)
    result.peak_gib = bench.peak_gib()
    result.extra["rows_per_step"] = round(sum(s.slot_steps for s in stats) / max(1, steps), 1)
    result.extra["lengths_as_forced"] = [r.n_output_tokens for r in responses] == lengths
    errors = [r.error for r in responses if r.error]
    if errors:
        result.status, result.note = "error", f"{len(errors)} requests failed: {errors[0]}"[:500]
    return result


# ------------------------------------------------------------------------------------------
# Variants
def run_probe(bench: Bench, n_puzzles: int) -> None:
    """Decode ms/step of one batch under each attention, with short fixed outputs."""
    a = bench.args
    requests = bench.puzzles(n_puzzles)
    n_steps = 8 if a.tiny else 32
    for attn in ("sdpa", "sdpa_gqa"):
        bench.current = f"probe-{attn}"
        bench.reset_memory()
        backend = bench.backend(len(requests), attn)
        result = Result(f"probe-{attn}", f"{n_puzzles} puzzles x {a.samples}, {n_steps} tokens "
                        f"each, attention {attn}; tokens/s = decode only, every row busy")
        _run_backend(bench, backend, requests, result, [n_steps] * len(requests))
        if result.decode_ms_per_step:
            result.tokens_per_s = round(1000 * len(requests) / result.decode_ms_per_step, 1)
            bench.probe[attn] = result.decode_ms_per_step
            bench.probe[f"{attn}-prefill"] = result.prefill_s
            bench.probe["rows"] = len(requests)
        bench.add(result)


def run_loop(bench: Bench, n_puzzles: int) -> None:
    """The release: one generate call per puzzle with num_return_sequences, sdpa attention."""
    a = bench.args
    bench.current = "loop"
    requests = bench.puzzles(n_puzzles)
    lengths = bench.lengths(requests)
    result = Result("loop", f"release pattern: 1 puzzle x {a.samples} samples per generate call, sdpa")
    bench.reset_memory()
    bench.model.set_attn_implementation("sdpa")
    prefill = decode = 0.0
    steps = rows = 0
    produced: list[int] = []
    _synchronize(bench.device)
    start = time.perf_counter()
    for p in range(n_puzzles):
        text, image = bench.chat(requests[p * a.samples])
        inputs = bench.processor(text=[text], images=[image], return_tensors="pt",
                                 **bench.size_kwargs).to(bench.device)
        forced = ForcedLengths(bench.eos_id, bench.pad_id, bench.draw)
        output = bench.model.generate(
            **inputs, max_new_tokens=a.max_new_tokens, do_sample=True, temperature=a.temperature,
            top_p=a.top_p, top_k=0, num_return_sequences=a.samples, logits_processor=[forced],
            pad_token_id=bench.pad_id,  # top_k=0 as the backend's NEUTRAL_GENERATION
        )
        _synchronize(bench.device)
        for row in output[:, inputs["input_ids"].shape[1]:].tolist():
            produced.append(row.index(bench.eos_id) + 1 if bench.eos_id in row else len(row))
        longest = max(lengths[p * a.samples:(p + 1) * a.samples])
        prefill += forced.first_call_at - forced.created_at
        decode += time.perf_counter() - forced.first_call_at
        steps, rows = steps + longest, rows + longest * a.samples
    wall = time.perf_counter() - start
    result.puzzles, result.sequences = n_puzzles, len(requests)
    result.useful_tokens, result.steps, result.wall_s = sum(lengths), steps, round(wall, 2)
    result.prefill_s = round(prefill, 2)
    result.decode_ms_per_step = round(1000 * decode / max(1, steps - n_puzzles), 2)
    result.tokens_per_s = round(result.useful_tokens / wall, 1)
    result.puzzles_per_s = round(n_puzzles / wall, 4)
    result.slot_use = round(result.useful_tokens / rows, 3)
    result.peak_gib = bench.peak_gib()
    result.extra["lengths_as_forced"] = produced == lengths
    bench.add(result)


def run_backend_variant(bench: Bench, n_puzzles: int, variant: str) -> None:
    """crossmath's hf backend on one batch of ``n_puzzles`` x samples, attention sdpa_gqa."""
    a = bench.args
    name = f"{variant}-{n_puzzles}"
    bench.current = name
    requests = bench.puzzles(n_puzzles)
    lengths = bench.lengths(requests)
    what, options = BACKEND_VARIANTS[variant]
    result = Result(name, f"hf backend: {n_puzzles} puzzles x {a.samples} samples in one batch, "
                    f"left padding, sdpa_gqa, keyed sampling, {what}")
    if not bench.fits(result, bench.estimate_s("sdpa_gqa", len(requests), max(lengths))):
        return
    bench.reset_memory()
    try:
        backend = bench.backend(len(requests), "sdpa_gqa", **options)
        warm_up_s = 0.0
        if backend.decoder.compiled:  # compile once per backend, on the shapes measured next
            start = time.perf_counter()
            backend.generate(bench.capped(requests, [min(n, 8) for n in lengths]))
            _synchronize(bench.device)
            warm_up_s = time.perf_counter() - start
            print(f"   {name}: compile + warm-up call (8 tokens) took {warm_up_s:.1f} s", flush=True)
        _run_backend(bench, backend, requests, result, lengths)
        if result.compile_s is not None:
            result.compile_s = round(result.compile_s + warm_up_s, 1)
        result.extra["batch_size_after"] = backend.batch_size
    except Exception as error:  # record it and go on with the other variants
        result.status, result.note = "error", f"{type(error).__name__}: {error}"[:500]
    bench.add(result)


def run_continuous_batching(bench: Bench, n_puzzles: int) -> None:
    """transformers' continuous batching on text-only stand-ins of the same prompts and lengths."""
    a = bench.args
    bench.current = f"cb-{n_puzzles}"
    requests = bench.puzzles(n_puzzles)
    lengths = bench.lengths(requests)
    result = Result(f"cb-{n_puzzles}", f"transformers continuous batching, {n_puzzles} puzzles x "
                    f"{a.samples}: token ids only (5.17 takes no images), image tokens replaced by text")
    if not bench.fits(result, bench.estimate_s("sdpa_gqa", len(requests), max(lengths))):
        return
    bench.reset_memory()
    try:
        from transformers.generation.continuous_batching.utils import WorkloadHints

        tokenizer = bench.processor.tokenizer
        vision = {tokenizer.convert_tokens_to_ids(token)
                  for token in ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>")}
        filler = tokenizer("a", add_special_tokens=False)["input_ids"][0]
        stand_in = {request.request_id: [filler if t in vision else t for t in bench.prompt_ids(request)]
                    for request in requests}
        bench.model.set_attn_implementation("sdpa")
        config = GenerationConfig(max_new_tokens=a.max_new_tokens, do_sample=True,
                                  temperature=a.temperature, top_p=a.top_p,
                                  eos_token_id=bench.eos_id, pad_token_id=bench.pad_id)
        hints = WorkloadHints(max_prompt_length=max(len(v) for v in stand_in.values()),
                              max_generated_length=a.max_new_tokens, num_requests=len(requests))
        start = time.perf_counter()
        produced: dict[str, int] = {}
        # On CPU the cache is otherwise sized from the machine's memory (tens of seconds to fill).
        sizing = ContinuousBatchingConfig(num_blocks=64, max_batch_tokens=2048) if a.tiny else None
        with bench.model.continuous_batching_context_manager(
            generation_config=config, continuous_batching_config=sizing, workload_hints=hints,
            block=True, timeout=10,
        ) as manager:
            ready = time.perf_counter()
            result.compile_s = round(ready - start, 1)
            for request, length in zip(requests, lengths):
                manager.add_request(input_ids=stand_in[request.request_id],
                                    request_id=request.request_id, max_new_tokens=length, eos_token_id=-1)
            while len(produced) < len(requests):
                output = manager.get_result(timeout=1)
                if output is not None and output.is_finished():
                    produced[output.request_id] = len(output.generated_tokens)
                elif output is None and not manager.is_running():
                    raise RuntimeError(f"continuous batching stopped after {len(produced)} requests")
            _synchronize(bench.device)
            wall = time.perf_counter() - ready
    except Exception as error:
        result.status, result.note = "error", f"{type(error).__name__}: {error}"[:500]
        bench.add(result)
        return
    result.puzzles, result.sequences = n_puzzles, len(requests)
    result.useful_tokens, result.wall_s = sum(lengths), round(wall, 2)
    result.tokens_per_s = round(result.useful_tokens / wall, 1)
    result.puzzles_per_s = round(n_puzzles / wall, 4)
    result.slot_use = 1.0
    result.peak_gib = bench.peak_gib()
    result.extra["lengths_as_forced"] = [produced.get(r.request_id) for r in requests] == lengths
    result.note = "compile_s = manager start-up and warm-up"
    bench.add(result)


# ------------------------------------------------------------------------------------------
# Report
COLUMNS = ("variant", "status", "puzzles", "sequences", "tokens_per_s", "puzzles_per_s", "ratio_vs_loop",
           "decode_ms_per_step", "prefill_s", "wall_s", "slot_use", "peak_gib", "compile_s")


def print_row(result: Result) -> None:
    values = asdict(result)
    print("  ".join(f"{k}={values[k]}" for k in COLUMNS if values[k] not in (None, "")), flush=True)
    if result.note:
        print(f"   note: {result.note}", flush=True)


def print_summary(bench: Bench) -> None:
    print("\n== inference throughput (useful tokens only; ratio = tokens/s over the loop's) ==")
    widths = {"variant": 18, "status": 8}
    print("  ".join(f"{c:>{widths.get(c, 10)}}"[:max(10, widths.get(c, 10))] for c in COLUMNS))
    for result in bench.results:
        values = asdict(result)
        cells = ("" if values[c] is None else str(values[c]) for c in COLUMNS)
        print("  ".join(f"{cell:>{widths.get(c, 10)}}" for c, cell in zip(COLUMNS, cells)))
    ratios = [(r.ratio_vs_loop, r.variant) for r in bench.results if r.ratio_vs_loop]
    if ratios:
        best, variant = max(ratios)
        print(f"\nbest: {variant} at {best}x the loop's tokens/s (goals: >= 100x the loop, "
              "decode <= 18 ms/step at 64 puzzles x 4)"
              + (" -- tiny CPU smoke run: these timings mean nothing" if bench.args.tiny else ""))
    print(f"info: {json.dumps(bench.info)}")
    print("decode_ms_per_step: one step of all live sequences of a batch (compile excluded); "
          "slot_use: useful tokens over the row-steps computed (the loop keeps finished rows until "
          "its longest ends; the backend drops them in buckets); compile_s: warm-up call and first "
          "calls at new shapes with torch.compile, or the continuous-batching start-up.")
    if bench.out_path:
        print(f"results: {bench.out_path}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    bench = Bench(args)
    bench.start_watchdog()
    print(f"infer_gpu: {'tiny CPU smoke run' if args.tiny else 'GPU run'}, plan {args.variants}, "
          f"budget {args.time_budget_s:.0f} s, lengths lognormal(median {args.median_new_tokens}, "
          f"sigma {args.sigma}) capped at {args.max_new_tokens}", flush=True)
    bench.setup()
    for variant, n_puzzles in args.plan:
        if variant == "probe":
            run_probe(bench, n_puzzles)
        elif variant == "loop":
            run_loop(bench, n_puzzles)
        elif variant in BACKEND_VARIANTS:
            run_backend_variant(bench, n_puzzles, variant)
        elif variant == "cb":
            run_continuous_batching(bench, n_puzzles)
    with bench.lock:
        print_summary(bench)
        bench.write()


if __name__ == "__main__":
    main()
