"""``python -m crossmath.generate n=1000 difficulty=hard seed=7 out=DIR styles=[original]``.

Writes ``DIR/puzzles.parquet`` (the design's puzzle table) and, for each style, the release's
layout: ``DIR/<Folder>/testset_<tag>.jsonl`` with its images beside it. Every option is checked
before any work: a bad one ends the command with one line naming it (exit status 2).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from crossmath.core.errors import ConfigError
from crossmath.drawing import Style, load_style
from crossmath.drawing.release_files import write_release_images
from crossmath.puzzle.model import DIFFICULTIES
from crossmath.puzzle.records import record_fields, write_official_jsonl
from crossmath.puzzle.synthesis import GeneratorConfig, generate_puzzles
from crossmath.puzzle.table import write_puzzle_table
from crossmath.runtime.entry import command

DIFFICULTY_CHOICES = (*DIFFICULTIES, "mixed")


def check_count(n: Any) -> int:
    """``n`` as a number of puzzles: an integer of at least 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError("n", f"n={n!r}: the number of puzzles must be an integer of at least 1")
    return n


def check_difficulty(difficulty: Any) -> str:
    """``difficulty`` as one of the generator's levels, or ``mixed`` (the levels in turn)."""
    if difficulty not in DIFFICULTY_CHOICES:
        raise ConfigError("difficulty", f"difficulty={difficulty!r}: choose one of "
                                        f"{', '.join(DIFFICULTY_CHOICES)}")
    return difficulty


def check_styles(names: Any) -> list[Style]:
    """The styles named (one name or a list of names), each loaded; an unknown one raises
    ``StyleError`` listing the available styles."""
    names = [names] if isinstance(names, str) else list(names or [])
    return [load_style(name) for name in names]


def checked_options(cfg: DictConfig) -> tuple[int, str, list[Style], GeneratorConfig]:
    """Every option of the command checked, or a ``ConfigError`` (or ``StyleError``) naming
    the bad one."""
    generator = OmegaConf.to_container(cfg.generator)
    try:
        config = GeneratorConfig(**generator)
    except (TypeError, ValueError) as error:
        raise ConfigError("generator", f"generator: {error}") from None
    return check_count(cfg.n), check_difficulty(cfg.difficulty), check_styles(cfg.styles), config


@command("crossmath.generate", config_name="generate", door=checked_options)
def main(cfg: DictConfig) -> None:
    n, difficulty, styles, config = checked_options(cfg)  # before any work
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    puzzles = generate_puzzles(n, difficulty, cfg.seed, config=config)
    elapsed = time.perf_counter() - started
    write_puzzle_table(puzzles, out / "puzzles.parquet")
    print(f"{len(puzzles)} {difficulty} puzzles in {elapsed:.1f} s -> {out / 'puzzles.parquet'}")
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
