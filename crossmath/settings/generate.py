"""``crossmath generate``'s door: ``conf/generate.yaml`` checked and read into
``GenerateSettings`` before any puzzle is made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from crossmath.core.errors import ConfigError
from crossmath.drawing import Style, load_style
from crossmath.puzzle.model import DIFFICULTIES
from crossmath.puzzle.synthesis import GeneratorConfig

DIFFICULTY_CHOICES = (*DIFFICULTIES, "mixed")


@dataclass(frozen=True)
class GenerateSettings:
    """How many puzzles, of which difficulty and seed, made by ``generator``, written to
    ``out`` and drawn in each of ``styles`` (with the solved image too when
    ``solved_images``)."""

    n: int
    difficulty: str
    seed: int
    generator: GeneratorConfig
    styles: tuple[Style, ...]
    out: Path
    solved_images: bool

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "GenerateSettings":
        """Every option checked, or a ``ConfigError`` (or ``StyleError``) naming the bad one."""
        fields = OmegaConf.to_container(cfg.generator)
        try:
            generator = GeneratorConfig(**fields)
        except (TypeError, ValueError) as error:
            raise ConfigError("generator", f"generator: {error}") from None
        return cls(n=check_count(cfg.n), difficulty=check_difficulty(cfg.difficulty),
                   styles=tuple(check_styles(cfg.styles)), generator=generator, seed=cfg.seed,
                   out=Path(cfg.out), solved_images=cfg.solved_images)


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
