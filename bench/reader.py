"""The reader (``model=reader``): images per second per core, and how operators are best read.

    python bench/reader.py [--styles original,...] [--n 12] [--rounds 3] [--baseline-images 4]
                           [--out reader.json]

Images: the official sample's 48 (12 puzzles in the release's four styles, its own files) and
``--n`` generated puzzles (mixed difficulty) drawn in each of ``--styles`` (all seven by
default). Needs the ``reader`` extra.

- **speed**: the reader as the backend runs it (as ``ReaderBackend.read``: decode the PNG,
  find the grid, every cell, operators by template, numbers by the OCR engine on one
  onnxruntime thread), timed in CPU seconds of this one process (a per-core rate that other load on the
  machine barely moves), median of ``--rounds``. Where the time of an image goes: the grid
  and cells, operator templates, the OCR engine.
- **baseline**, same run, same images (``--baseline-images`` of each source): the engine as a
  new user runs it, RapidOCR's own pipeline on the whole image (text detection, direction
  classifier, recognition; its own preprocessing, on one thread): its images per second per
  core, the share of the grid's numbers among the texts it returns and of its operators and
  ``=``. It imports OpenCV, which the reader never does; where OpenCV cannot load (no libGL)
  the baseline is reported as unavailable.
- **operators**: every operator and ``=`` cell of the images, read three ways: template
  matching against the styles' glyphs (what the reader does), the OCR engine restricted to
  ``+ - × ÷ =``, and the OCR engine over its whole dictionary; and every number cell by the
  engine restricted to digits and over its whole dictionary. Accuracy per style.

Last line: the results as JSON (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from crossmath.drawing import available_styles, load_style, render_puzzle_png  # noqa: E402
from crossmath.models.ocr import TextRecognizer  # noqa: E402
from crossmath.puzzle.grid import BLANK, EMPTY, EQUALS, OPERATORS, Grid  # noqa: E402
from crossmath.puzzle.records import read_official_jsonl  # noqa: E402
from crossmath.puzzle.synthesis import generate_puzzles  # noqa: E402
from crossmath.reading import DIGITS, find_lattice, read_grid  # noqa: E402
from crossmath.reading import grid_reading as reading_module  # noqa: E402
from crossmath.reading.cells import look_at_cell  # noqa: E402
from crossmath.reading.glyphs import match_symbol  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "official-sample"
RELEASE = {"original": ("Original", "testset_hr.jsonl"),
           "noborder": ("Noborder", "testset_noborder.jsonl"),
           "beige": ("Beige", "testset_hr_beige.jsonl"),
           "altstyle": ("Altstyle", "testset_altstyle.jsonl")}
SYMBOL_ALPHABET = "".join((*OPERATORS, EQUALS))


def image_sets(styles: list[str], n: int, official: Path) -> dict[str, list[tuple[Grid, bytes]]]:
    """``release/<style>``: the sample's own images; ``generated/<style>``: ours."""
    sets = {}
    for style, (folder, name) in RELEASE.items():
        records = read_official_jsonl(official / folder / name)
        sets[f"release/{style}"] = [(r.grid(), r.image_blank_path.read_bytes()) for r in records]
    puzzles = generate_puzzles(n, "mixed", seed=25)
    for style in styles:
        drawn = load_style(style)
        sets[f"generated/{style}"] = [(p.grid, render_puzzle_png(p.grid, drawn)) for p in puzzles]
    return sets


def cpu_seconds(work) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def speed(recognizer: TextRecognizer, images: list[bytes], rounds: int) -> dict:
    """The reader's images per CPU-second (median over rounds): decode the PNG and read the
    grid, as ``ReaderBackend.read`` does; then where the time goes."""
    parts = {"ocr": 0.0, "templates": 0.0}

    def numbers(crops):
        return [text or None for text in recognizer.read(crops, DIGITS)]

    def read_all(read_numbers) -> None:
        for png in images:
            read_grid(decode(png), read_numbers)

    def timed(part, work):
        def run(*args):
            started = time.process_time()
            try:
                return work(*args)
            finally:
                parts[part] += time.process_time() - started
        return run

    rates = [len(images) / cpu_seconds(lambda: read_all(numbers)) for _ in range(rounds)]
    symbols = reading_module.match_symbol
    reading_module.match_symbol = timed("templates", symbols)
    try:
        total = cpu_seconds(lambda: read_all(timed("ocr", numbers)))
    finally:
        reading_module.match_symbol = symbols
    rate = statistics.median(rates)
    return {"images": len(images), "images_per_cpu_s": rate, "seconds_per_image": 1 / rate,
            "share": {"ocr": parts["ocr"] / total, "templates": parts["templates"] / total,
                      "decode_grid_and_cells": 1 - (parts["ocr"] + parts["templates"]) / total}}


def rapidocr_baseline(sets: dict, count: int) -> dict:
    """RapidOCR's own whole-image pipeline on ``count`` images of each set, one thread."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as error:  # OpenCV without libGL, most often
        return {"available": False, "reason": f"{type(error).__name__}: {error}"}
    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
    found = {"numbers": [0, 0], "operators": [0, 0]}
    images = []
    for items in sets.values():
        for grid, png in items[:count]:
            images.append(png)
            result, _ = engine(decode(png)[:, :, ::-1])
            texts = [text for _, text, _ in (result or [])]
            tokens = [t for row in grid.cells for t in row if t not in (EMPTY, BLANK)]
            for token in tokens:
                kind = "numbers" if token.isdigit() else "operators"
                found[kind][1] += 1
                found[kind][0] += any(token == text.strip() for text in texts)
    seconds = cpu_seconds(lambda: [engine(decode(png)[:, :, ::-1]) for png in images])
    return {"available": True, "images": len(images), "images_per_cpu_s": len(images) / seconds,
            "numbers_found": found["numbers"][0] / found["numbers"][1],
            "operators_found": found["operators"][0] / found["operators"][1]}


def operator_ways(recognizer: TextRecognizer, sets: dict) -> dict:
    """Per set: operator cells read by templates, by OCR restricted to the five symbols and by
    OCR over the whole dictionary; number cells by OCR restricted to digits and not."""
    results = {}
    for name, items in sets.items():
        symbols, numbers = [], []
        for grid, png in items:
            pixels = decode(png)
            lattice = find_lattice(pixels)
            for position in grid.positions():
                token = grid[position]
                if token in (EMPTY, BLANK):
                    continue
                look = look_at_cell(pixels, lattice, *position)
                (numbers if token.isdigit() else symbols).append((token, look))
        truth = [token for token, _ in symbols]
        crops = [look.crop for _, look in symbols]
        number_truth = [token for token, _ in numbers]
        number_crops = [look.crop for _, look in numbers]

        def accuracy(read, expected):
            return sum(a == b for a, b in zip(read, expected)) / len(expected)

        results[name] = {
            "operator_cells": len(truth),
            "templates": accuracy([match_symbol(look.ink).symbol for _, look in symbols], truth),
            "ocr_operator_alphabet": accuracy(recognizer.read(crops, SYMBOL_ALPHABET), truth),
            "ocr_whole_dictionary": accuracy(recognizer.read(crops, None), truth),
            "number_cells": len(number_truth),
            "ocr_digits": accuracy(recognizer.read(number_crops, DIGITS), number_truth),
            "ocr_digits_whole_dictionary": accuracy(recognizer.read(number_crops, None),
                                                    number_truth),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", default=",".join(available_styles()))
    parser.add_argument("--n", type=int, default=12, help="generated puzzles per style")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-images", type=int, default=4,
                        help="images of each set RapidOCR's whole pipeline reads (0: none)")
    parser.add_argument("--official", type=Path, default=SAMPLE)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    sets = image_sets(args.styles.split(","), args.n, args.official)
    recognizer = TextRecognizer(threads=1)
    images = [png for items in sets.values() for _, png in items]
    speed(recognizer, images[:1], 1)  # warm up: onnxruntime's first run, the glyph templates
    results = {"load_average": os.getloadavg(), "reader": speed(recognizer, images, args.rounds)}
    print(f"reader: {results['reader']['images_per_cpu_s']:.2f} images per CPU-second "
          f"({results['reader']['images']} images, median of {args.rounds} rounds); "
          f"time shares {json.dumps(results['reader']['share'])}")
    if args.baseline_images:
        results["rapidocr_whole_image"] = baseline = rapidocr_baseline(sets, args.baseline_images)
        if baseline["available"]:
            results["ratio"] = results["reader"]["images_per_cpu_s"] / baseline["images_per_cpu_s"]
            print(f"baseline RapidOCR whole image: {baseline['images_per_cpu_s']:.2f} images "
                  f"per CPU-second, numbers found {100 * baseline['numbers_found']:.1f}%, "
                  f"operators found {100 * baseline['operators_found']:.1f}%; reader / baseline "
                  f"{results['ratio']:.2f}x")
        else:
            print(f"baseline RapidOCR whole image: unavailable ({baseline['reason']})")
    results["operators"] = operator_ways(recognizer, sets)
    print("| images | operator cells | templates | OCR, + - × ÷ = | OCR, whole dictionary | "
          "number cells | OCR, digits | OCR, whole dictionary |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in results["operators"].items():
        print(f"| {name} | {row['operator_cells']} | {100 * row['templates']:.1f} | "
              f"{100 * row['ocr_operator_alphabet']:.1f} | {100 * row['ocr_whole_dictionary']:.1f}"
              f" | {row['number_cells']} | {100 * row['ocr_digits']:.1f} | "
              f"{100 * row['ocr_digits_whole_dictionary']:.1f} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
