"""``python -m crossmath.generate n=1000 difficulty=hard seed=7 out=DIR styles=[original]``.

Writes ``DIR/puzzles.parquet`` (the design's puzzle table) and, for each style, the release's
layout: ``DIR/<Folder>/testset_<tag>.jsonl`` with its images beside it.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from crossmath.puzzle.records import record_fields, write_official_jsonl
from crossmath.puzzle.synthesis import GeneratorConfig, generate_puzzles
from crossmath.puzzle.table import write_puzzle_table
from crossmath.runtime.errors import reports_failures


@hydra.main(version_base="1.3", config_path="pkg://crossmath.conf", config_name="generate")
@reports_failures("crossmath.generate")
def main(cfg: DictConfig) -> None:
    from crossmath.drawing import load_style
    from crossmath.drawing.release_files import write_release_images

    styles = [load_style(name) for name in cfg.styles]  # fail on a bad style before working
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    config = GeneratorConfig(**OmegaConf.to_container(cfg.generator))
    started = time.perf_counter()
    puzzles = generate_puzzles(cfg.n, cfg.difficulty, cfg.seed, config=config)
    elapsed = time.perf_counter() - started
    write_puzzle_table(puzzles, out / "puzzles.parquet")
    print(f"{len(puzzles)} {cfg.difficulty} puzzles in {elapsed:.1f} s -> {out / 'puzzles.parquet'}")
    for style in styles:
        folder = out / style.layout.folder
        folder.mkdir(parents=True, exist_ok=True)
        records = [record_fields(p, style.layout, p.name) for p in puzzles]
        jsonl = folder / style.layout.jsonl_name
        write_official_jsonl(records, jsonl)
        write_release_images(puzzles, records, style, folder, solved=cfg.solved_images)
        print(f"{style.name}: {jsonl} and {len(records)} images")


if __name__ == "__main__":
    main()
