"""Render speed: images per second per core against a naive Pillow renderer, and Ray scaling.

    python bench/render.py [--images 600] [--style original] [--rows 4000] [--no-ray]

Puzzles are the official sample's 12 grids, repeated.
- naive: ``crossmath.drawing.naive`` (one Pillow rectangle and text call per cell, Pillow's
  default PNG encoder), font loaded once; it must give the same pixels as ours (checked here).
- ours: ``render_puzzle_png`` with its tile cache warmed by one pass over the grids (an actor
  pays that once).
  Both are timed in CPU seconds of this one process (so per core, and little moved by other
  load on the machine), taking turns for 5 rounds; the medians are printed.
- Ray: the pipeline's ``RenderImages`` callable in two plain Ray actors (1 CPU each, started
  and warmed first), fed the same pyarrow batches all to one actor, then round-robin to both,
  taking turns for 5 rounds; wall-clock images/s and their ratio, and how much of the
  wall time the actors were on a CPU (below 100% means they waited: for Ray, or for a core).
  Scaling needs both cores free: other load on the machine lowers it (the load average is
  printed).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from crossmath.drawing import load_style, render_puzzle_array, render_puzzle_png
from crossmath.drawing.naive import draw_reference_image, reference_font, render_reference_png
from crossmath.drawing.png import encode_rgb_png
from crossmath.puzzle.records import read_official_jsonl

SAMPLE = (Path(__file__).resolve().parents[2] / "shared" / "official-sample" / "Original"
          / "testset_hr.jsonl")


def cpu_rate(work, items: list) -> float:
    """Items per CPU-second of this process: a per-core rate that other load barely moves."""
    started = time.process_time()
    for item in items:
        work(item)
    return len(items) / (time.process_time() - started)


def interleaved(contenders: dict, items: list, rounds: int = 5) -> dict[str, float]:
    """Median per-core rate of each contender, the contenders taking turns round by round."""
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, work in contenders.items():
            rates[name].append(cpu_rate(work, items))
    return {name: statistics.median(values) for name, values in rates.items()}


def single_core(grids: list, style_name: str, n_images: int) -> None:
    style = load_style(style_name)
    font = reference_font(style)
    for grid in grids:
        same = np.array_equal(np.asarray(draw_reference_image(grid, style, font)),
                              render_puzzle_array(grid, style))
        if not same:
            sys.exit(f"ours and the naive renderer differ on a {grid.n_rows}x{grid.n_cols} grid")
        render_puzzle_png(grid, style)  # warm the tile cache
    work = [grids[i % len(grids)] for i in range(n_images)]
    arrays = [render_puzzle_array(grid, style) for grid in grids]

    def pillow_png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    rates = interleaved({"naive": lambda g: render_reference_png(g, style, font),
                         "ours": lambda g: render_puzzle_png(g, style)}, work)
    parts = interleaved({"paint": lambda g: render_puzzle_array(g, style)}, work, rounds=3)
    encoders = interleaved({"ours": encode_rgb_png, "pillow": pillow_png}, arrays * 10, rounds=3)
    size_ours = statistics.mean(len(encode_rgb_png(a)) for a in arrays) / 1024
    size_pillow = statistics.mean(len(pillow_png(a)) for a in arrays) / 1024
    pixels = statistics.mean(a.shape[0] * a.shape[1] for a in arrays)
    print(f"style {style_name}, {n_images} images of {pixels / 1e3:.0f} kpx on average; "
          f"images per CPU-second of one process (median of 5 interleaved rounds); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  naive Pillow   {rates['naive']:8.1f} images/s")
    print(f"  ours           {rates['ours']:8.1f} images/s   "
          f"-> {rates['ours'] / rates['naive']:.2f}x naive")
    print(f"    paint only {parts['paint']:.0f}/s; PNG encode only: ours {encoders['ours']:.0f}/s "
          f"({size_ours:.1f} KB), Pillow default {encoders['pillow']:.0f}/s ({size_pillow:.1f} KB)")


def ray_scaling(grids: list, style_name: str, n_rows: int, batch_size: int = 50,
                rounds: int = 5) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import pyarrow as pa
    import ray

    from crossmath.pipeline.render_stage import RenderImages

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    markdown = [grid.to_markdown() for grid in grids]
    batches = [
        pa.table({
            "grid": [markdown[(start + i) % len(markdown)] for i in range(batch_size)],
            "style": [style_name] * batch_size,
            "modality": ["image"] * batch_size,
        })
        for start in range(0, n_rows, batch_size)
    ]
    batch_refs = [ray.put(batch) for batch in batches]

    @ray.remote(num_cpus=1)
    class RenderActor:
        def __init__(self) -> None:
            self.render = RenderImages()

        def images(self, batch: pa.Table) -> tuple[int, float]:
            """Images rendered, and the CPU seconds this actor's thread spent on them."""
            started = time.thread_time()
            count = len(self.render(batch).column("image"))
            return count, time.thread_time() - started

    actors = [RenderActor.remote() for _ in range(2)]
    ray.get([actor.images.remote(batch_refs[0]) for actor in actors])  # start and warm both

    def rate(n_actors: int) -> tuple[float, float]:
        """Images per wall second, and the share of the wall time each actor spent rendering."""
        started = time.perf_counter()
        done = ray.get([actors[i % n_actors].images.remote(ref)
                        for i, ref in enumerate(batch_refs)])
        wall = time.perf_counter() - started
        return sum(n for n, _ in done) / wall, sum(cpu for _, cpu in done) / (n_actors * wall)

    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for _ in range(rounds):  # taking turns, so load from other processes hits both alike
        for n_actors in runs:
            runs[n_actors].append(rate(n_actors))
    ray.shutdown()
    (one, busy_one), (two, busy_two) = (sorted(runs[n])[len(runs[n]) // 2] for n in (1, 2))
    best_one, best_two = max(runs[1])[0], max(runs[2])[0]
    print(f"Ray, {len(batches) * batch_size} images in batches of {batch_size}, "
          f"{os.cpu_count()} cores, wall clock, median (best) of {rounds} interleaved rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  1 actor  {one:8.1f} ({best_one:.1f}) images/s   "
          f"(actor on CPU {busy_one:.0%} of the time)")
    print(f"  2 actors {two:8.1f} ({best_two:.1f}) images/s   "
          f"(each on CPU {busy_two:.0%} of the time)")
    print(f"  2 actors / 1 actor: {two / one:.2f}x median ({best_two / best_one:.2f}x best)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=600, help="images per single-core timing")
    parser.add_argument("--style", default="original")
    parser.add_argument("--rows", type=int, default=4000, help="images per Ray timing")
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="official-format jsonl")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray actor scaling")
    args = parser.parse_args()
    grids = [record.grid() for record in read_official_jsonl(args.sample)]
    single_core(grids, args.style, args.images)
    if not args.no_ray:
        ray_scaling(grids, args.style, args.rows)


if __name__ == "__main__":
    main()
