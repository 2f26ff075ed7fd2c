"""``python -m crossmath.generate n=1000 difficulty=hard seed=7 out=DIR styles=[original]``.

Writes ``DIR/puzzles.parquet`` (the design's puzzle table) and, for each style, the release's
layout: ``DIR/<Folder>/testset_<tag>.jsonl`` with its images beside it. Every option is checked
before any work: a bad one ends the command with one line naming it (exit status 2).
"""

from __future__ import annotations

import time

from omegaconf import DictConfig

from crossmath.drawing.release_files import write_release_images
from crossmath.puzzle.records import record_fields, write_official_jsonl
from crossmath.puzzle.synthesis import generate_puzzles
from crossmath.puzzle.table import write_puzzle_table
from crossmath.runtime.entry import command
from crossmath.settings.generate import GenerateSettings


@command("crossmath.generate", config_name="generate", door=GenerateSettings.from_config)
def main(cfg: DictConfig) -> None:
    settings = GenerateSettings.from_config(cfg)  # the door: before any work
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    puzzles = generate_puzzles(settings.n, settings.difficulty, settings.seed,
                               config=settings.generator)
    elapsed = time.perf_counter() - started
    write_puzzle_table(puzzles, out / "puzzles.parquet")
    print(f"{len(puzzles)} {settings.difficulty} puzzles in {elapsed:.1f} s -> "
          f"{out / 'puzzles.parquet'}")
    for style in settings.styles:
        folder = out / style.layout.folder
        folder.mkdir(parents=True, exist_ok=True)
        records = [record_fields(p, style.layout, p.name) for p in puzzles]
        jsonl = folder / style.layout.jsonl_name
        write_official_jsonl(records, jsonl)
        write_release_images(puzzles, records, style, folder, solved=settings.solved_images)
        print(f"{style.name}: {jsonl} and {len(records)} images")


if __name__ == "__main__":
    main()
