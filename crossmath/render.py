"""``python -m crossmath.render path=FILE.jsonl style=NAME out=DIR [solved=true]``."""

from __future__ import annotations

import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from crossmath.drawing.release_files import write_release_images
from crossmath.drawing.style import STYLE_DIR, Style, style_from_mapping
from crossmath.puzzle.records import read_official_jsonl
from crossmath.runtime.entry import command
from crossmath.settings.checks import existing_path, non_empty_file, writable_folder


def checked_inputs(cfg: DictConfig) -> tuple[Style, Path]:
    """The style to draw and the records file, checked (the output folder writable)."""
    writable_folder(cfg.out, "out")
    choice = HydraConfig.get().runtime.choices["style"]
    style = style_from_mapping(OmegaConf.to_container(cfg.style, resolve=True),
                               source=str(STYLE_DIR / f"{choice}.yaml"))
    return style, non_empty_file(existing_path(cfg.path, "path"), "path")


@command("crossmath.render", config_name="render", door=checked_inputs)
def main(cfg: DictConfig) -> None:
    style, path = checked_inputs(cfg)
    records = read_official_jsonl(path)
    puzzles = [record.to_puzzle() for record in records]  # every record is checked before writing
    started = time.perf_counter()
    count = write_release_images(puzzles, [r.fields for r in records], style, cfg.out,
                                 solved=cfg.solved, source=str(cfg.path))
    elapsed = time.perf_counter() - started
    print(f"{count} {style.name} images from {len(records)} records in {elapsed:.1f} s "
          f"-> {cfg.out}")


if __name__ == "__main__":
    main()
