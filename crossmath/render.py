"""``python -m crossmath.render path=FILE.jsonl style=NAME out=DIR [solved=true]``."""

from __future__ import annotations

import time

from omegaconf import DictConfig

from crossmath.drawing.release_files import write_release_images
from crossmath.puzzle.records import read_official_jsonl
from crossmath.runtime.entry import command
from crossmath.settings.render import RenderSettings


@command("crossmath.render", config_name="render", door=RenderSettings.from_config)
def main(cfg: DictConfig) -> None:
    settings = RenderSettings.from_config(cfg)  # the door: style, records and folder checked
    records = read_official_jsonl(settings.path)
    puzzles = [record.to_puzzle() for record in records]  # every record is checked before writing
    started = time.perf_counter()
    count = write_release_images(puzzles, [r.fields for r in records], settings.style,
                                 settings.out, solved=settings.solved, source=settings.source)
    elapsed = time.perf_counter() - started
    print(f"{count} {settings.style.name} images from {len(records)} records in {elapsed:.1f} s "
          f"-> {settings.out}")


if __name__ == "__main__":
    main()
