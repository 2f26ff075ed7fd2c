"""A composed config as plain values: what a door reads it from."""

from __future__ import annotations

from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf


def plain_options(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` resolved into dicts, lists and scalars (a mapping given as such is copied)."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
