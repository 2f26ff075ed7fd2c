"""One way to connect to Ray, for every command that needs it.

``address`` null starts a local Ray on this machine (``num_cpus`` caps it); ``"auto"`` or
``ray://host:10001`` joins a running cluster. An already connected process is left as it is.
"""

from __future__ import annotations

from typing import Any, Mapping


def connect_ray(settings: Mapping[str, Any], *, dashboard: bool = False) -> None:
    """Connect this process to the Ray that ``settings`` (the ``ray`` config group) names.

    ``dashboard`` starts the local dashboard too: Ray Train's placement-group cleaner polls
    the state API it serves (and warns every few seconds without it).
    """
    import ray

    if ray.is_initialized():
        return
    if settings.get("address"):
        ray.init(address=settings["address"])
    else:
        ray.init(num_cpus=settings.get("num_cpus"), include_dashboard=dashboard)
