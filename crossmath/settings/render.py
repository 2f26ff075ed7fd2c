"""``crossmath render``'s door: ``conf/render.yaml`` checked and read into ``RenderSettings``
(the style group's choice resolved into its ``Style``) before any image is drawn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from crossmath.drawing.style import STYLE_DIR, Style, style_from_mapping
from crossmath.settings.checks import existing_path, non_empty_file, writable_folder


@dataclass(frozen=True)
class RenderSettings:
    """The style to draw in, the records file (``path``, checked, and ``source``, as given:
    the images' provenance), the output folder (writable) and whether the solved images are
    drawn too."""

    style: Style
    path: Path
    source: str
    out: str
    solved: bool

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "RenderSettings":
        writable_folder(cfg.out, "out")
        choice = HydraConfig.get().runtime.choices["style"]
        style = style_from_mapping(OmegaConf.to_container(cfg.style, resolve=True),
                                   source=str(STYLE_DIR / f"{choice}.yaml"))
        path = non_empty_file(existing_path(cfg.path, "path"), "path")
        return cls(style=style, path=path, source=str(cfg.path), out=cfg.out, solved=cfg.solved)
