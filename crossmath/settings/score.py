"""``crossmath score``'s door: ``conf/score/score.yaml`` checked and read into
``ScoreSettings`` before any log is scored."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from crossmath.metrics.release_logs import run_log_paths
from crossmath.settings.checks import existing_path, non_empty_file


@dataclass(frozen=True)
class ScoreSettings:
    """The official-format jsonl (``data``, as given), the glob of the run logs (``preds``),
    whether a log shorter than the data is scored on what it covers, and where to write the
    full summary (None: nowhere)."""

    data: str
    preds: str
    allow_partial: bool
    save_json: str | None

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "ScoreSettings":
        """``as_given``, checked first (``crossmath check score``): the data file exists and
        holds something; the logs' pattern matches a file at least."""
        non_empty_file(existing_path(cfg.data, "data"), "data")
        run_log_paths(cfg.preds)
        return cls.as_given(cfg)

    @classmethod
    def as_given(cls, cfg: DictConfig) -> "ScoreSettings":
        """The options read, unchecked: scoring opens the files itself and names the one it
        cannot read (``<file>: No such file or directory``, ``<file>: no records``)."""
        return cls(data=cfg.data, preds=cfg.preds, allow_partial=bool(cfg.allow_partial),
                   save_json=cfg.save_json)
