"""``crossmath report``'s door: ``conf/report.yaml`` checked and read into ``ReportSettings``
before the tracking store is opened."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from crossmath.metrics.scorecard import GAP_METRICS
from crossmath.settings.checks import existing_tracking_store, one_of


@dataclass(frozen=True)
class ReportSettings:
    """The gap metric, the tracking store (which must exist: a report creates none) and its
    experiment, the style to compare (``all``: pooled), the output folder, and how long a
    RUNNING run may go without a heartbeat before it is marked KILLED (None: never)."""

    metric: str
    tracking_uri: str
    experiment: str
    compare_style: str
    out: str
    stale_after_minutes: float | None

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "ReportSettings":
        metric = one_of(cfg.metric, "metric", GAP_METRICS)
        tracking_uri = existing_tracking_store(cfg.mlflow.tracking_uri, "mlflow.tracking_uri")
        return cls(metric=metric, tracking_uri=tracking_uri, experiment=cfg.mlflow.experiment,
                   compare_style=cfg.compare_style, out=cfg.out,
                   stale_after_minutes=cfg.stale_after_minutes)
