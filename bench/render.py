"""Render speed: images per second per core against a naive Pillow renderer, and Ray scaling.

    python bench/render.py [--images 600] [--style original] [--rows 4000] [--no-ray]

Puzzles are the official sample's 12 grids, repeated.
- naive: ``crossmath.drawing.naive`` (one Pillow rectangle and text call per cell, font loaded
  once), its image written by the same PNG writer as ours: 8-bit RGB, no row filter, zlib level
  1, one IDAT. The bench checks that both give byte-identical files, so the ratio compares
  rendering, not PNG settings.
- ours: the style's painter (what ``render_puzzle_png`` calls), its tile cache warmed by one
  pass over the grids (an actor pays that once).
  Both are timed in CPU seconds of this one process (so per core, and little moved by other
  load on the machine), taking turns for 5 rounds; the medians are printed, then where the
  time of one image goes (paint or draw, Pillow's image to RGB rows, the shared PNG encode).
- Reported apart: the naive renderer saving with Pillow's default PNG encoder (adaptive row
  filters, zlib level 6), the baseline of earlier versions of this bench. It writes smaller
  files more slowly, so a ratio against it mixes rendering with PNG settings.
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

from crossmath.drawing import load_style
from crossmath.drawing.naive import draw_reference_image, reference_font, render_reference_png
from crossmath.drawing.painter import painter_for
from crossmath.drawing.png import ScanlineCanvas, encode_rgb_png
from crossmath.puzzle.grid import Grid
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


def pillow_default_png(image: Image.Image) -> bytes:
    """Pillow's PNG encoder at its defaults: a row filter chosen per row, zlib level 6."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def single_core(grids: list, style_name: str, n_images: int) -> None:
    style = load_style(style_name)
    font = reference_font(style)
    painter = painter_for(style)
    for grid in grids:
        painter.png(grid)  # warm the tile cache, as an actor does once
        if render_reference_png(grid, style, font) != painter.png(grid):
            sys.exit(f"ours and the naive renderer differ on a {grid.n_rows}x{grid.n_cols} grid")
    work = [grids[i % len(grids)] for i in range(n_images)]
    canvas = ScanlineCanvas()

    def paint_only(grid: Grid) -> None:
        size = style.cell_size
        painter.paint_into(canvas.pixels(grid.n_rows * size, grid.n_cols * size), grid)

    # Each renderer, and each of its stages alone (a prefix of its work), in the same rounds.
    rates = interleaved({
        "naive": lambda g: render_reference_png(g, style, font),
        "naive draw": lambda g: draw_reference_image(g, style, font),
        "naive draw, RGB rows": lambda g: np.asarray(draw_reference_image(g, style, font)),
        "ours": painter.png,
        "ours paint": paint_only,
    }, work)
    pillow_naive = interleaved(
        {"naive": lambda g: pillow_default_png(draw_reference_image(g, style, font))}, work,
        rounds=3)["naive"]
    drawn = [draw_reference_image(grid, style, font) for grid in grids]
    encoders = interleaved({"ours": lambda image: encode_rgb_png(np.asarray(image)),
                            "pillow": pillow_default_png},
                           drawn * max(1, n_images // len(grids)), rounds=3)
    size_ours = statistics.mean(len(painter.png(grid)) for grid in grids) / 1024
    size_pillow = statistics.mean(len(pillow_default_png(image)) for image in drawn) / 1024
    pixels = statistics.mean(image.width * image.height for image in drawn)

    def ms(*stages: str) -> str:
        """Milliseconds per image of the last stage less the one before it."""
        times = [1000 / rates[stage] for stage in stages]
        return f"{times[-1] - (times[-2] if len(times) > 1 else 0):.2f} ms"

    print(f"style {style_name}, {n_images} images of {pixels / 1e3:.0f} kpx on average; "
          f"images per CPU-second of one process (median of 5 interleaved rounds); "
          f"load average {os.getloadavg()[0]:.1f}")
    print("same PNG settings for both (8-bit RGB, no row filter, zlib level 1, one IDAT); "
          "their files were checked byte for byte identical")
    print(f"  naive (Pillow, cell by cell)      {rates['naive']:8.1f} images/s")
    print(f"  ours (cached tiles)               {rates['ours']:8.1f} images/s   "
          f"-> {rates['ours'] / rates['naive']:.2f}x naive")
    print(f"  per image: naive draws {ms('naive draw')}, copies Pillow's image out to RGB rows "
          f"{ms('naive draw', 'naive draw, RGB rows')}, encodes "
          f"{ms('naive draw, RGB rows', 'naive')}; ours paints into the PNG rows "
          f"{ms('ours paint')}, encodes {ms('ours paint', 'ours')} ({size_ours:.1f} KB)")
    print(f"reported apart, not like for like: the naive renderer with Pillow's default PNG "
          f"encoder (adaptive row filters, zlib level 6, {size_pillow:.1f} KB) "
          f"{pillow_naive:.1f} images/s; ours is {rates['ours'] / pillow_naive:.2f}x that")
    print(f"  encoding a Pillow image alone: our writer {1000 / encoders['ours']:.2f} ms "
          f"(copy out included), Pillow's default encoder {1000 / encoders['pillow']:.2f} ms")


def ray_scaling(grids: list, style_name: str, n_rows: int, batch_size: int = 50,
                rounds: int = 5) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import pyarrow as pa
    import ray

    from crossmath.pipeline.render_stage import RenderImages

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    markdown = [grid.to_markdown() for grid in grids]
    unit_type = pa.struct([("puzzle_id", pa.string()), ("name", pa.string()),
                           ("grid", pa.string()), ("style", pa.string()),
                           ("modality", pa.string()), ("images", pa.list_(pa.binary()))])
    calls = pa.schema([("units", pa.list_(unit_type))])  # the render stage's input: calls
    batches = [  # one image unit per call, as the pipeline plans an image-only run
        pa.Table.from_pylist([
            {"units": [{"puzzle_id": f"p{start + i}", "name": None,
                        "grid": markdown[(start + i) % len(markdown)], "style": style_name,
                        "modality": "image", "images": None}]}
            for i in range(batch_size)], schema=calls)
        for start in range(0, n_rows, batch_size)
    ]
    batch_refs = [ray.put(batch) for batch in batches]

    @ray.remote(num_cpus=1)
    class RenderActor:
        def __init__(self) -> None:
            self.render = RenderImages({style_name: load_style(style_name)})

        def images(self, batch: pa.Table) -> tuple[int, float]:
            """Images rendered, and the CPU seconds this actor's thread spent on them."""
            started = time.thread_time()
            rendered = self.render(batch).column("units").to_pylist()
            count = sum(len(unit["images"]) for units in rendered for unit in units)
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
