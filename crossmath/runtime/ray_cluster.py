"""One way to reach Ray, for every command that needs it.

``address`` null starts a local Ray on this machine (``num_cpus`` caps it), and only once there
is work for it: a run with nothing left to ask starts no Ray at all. ``"auto"``, ``host:port``
or ``ray://host:10001`` joins a running cluster; whether it answers is checked at the door
(``check_reachable``), before the command touches anything, within ``connect_timeout_s``: an
unreachable cluster is one line naming the address (exit status 2), not a connection loop
that never ends. An already connected process is left as it is.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from crossmath.core.errors import ConfigError
from crossmath.runtime.stops import keeping_handlers

DEFAULT_CONNECT_TIMEOUT_S = 30.0
_RETRY_EVERY_S = 0.5
# The dashboard's address as Ray's state API reads it (ray.dashboard.utils): set for a local Ray,
# so that Ray Train's workers find *this* Ray, not "multiple active Ray instances" on the machine.
API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"


class RayUnreachable(ConfigError):
    """``ray.address`` names a cluster that does not answer."""


def cluster_address(settings: Mapping[str, Any]) -> str | None:
    """The address to join (``RAY_ADDRESS`` wins over ``auto``, as in ``ray.init``); None
    for a local Ray."""
    address = settings.get("address")
    if address == "auto" and os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    return address or None


def connect_timeout(settings: Mapping[str, Any]) -> float:
    value = settings.get("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError("ray.connect_timeout_s", f"must be a number of seconds > 0, got {value!r}")
    return float(value)


def check_reachable(settings: Mapping[str, Any]) -> None:
    """Raise ``RayUnreachable`` unless the cluster ``settings`` names answers within
    ``connect_timeout_s`` (nothing to check for a local Ray). A closed port is tried again until
    the deadline: a head node that is still starting opens it in time."""
    address = cluster_address(settings)
    if address is None:
        return
    deadline_s = connect_timeout(settings)
    host, port = _host_and_port(address)
    reason = port_silence(host, port, deadline_s)
    if reason is not None:
        raise RayUnreachable("ray.address", f"no Ray cluster answers at {address} ({host}:{port}: "
                             f"{reason}, for {deadline_s:g} s); start it, or fix ray.address "
                             "(null starts a local Ray), or raise ray.connect_timeout_s")


def port_silence(host: str, port: int, deadline_s: float) -> str | None:
    """Why nothing accepted a TCP connection at ``host:port`` within ``deadline_s`` (tried
    again every half second), or None once something does."""
    started = time.monotonic()
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(5.0, deadline_s))):
                return None
        except OSError as error:
            reason = (error.strerror or type(error).__name__).lower()
        if time.monotonic() - started + _RETRY_EVERY_S >= deadline_s:
            return reason
        time.sleep(_RETRY_EVERY_S)


def join_cluster(settings: Mapping[str, Any]) -> None:
    """At a command's door: join the cluster ``settings`` names, or stop with
    ``RayUnreachable`` within ``connect_timeout_s``. A local Ray (address null) is left for
    ``connect_ray`` to start when there is work for it."""
    connect_timeout(settings)  # a wrong value is refused even where it is not needed yet
    if cluster_address(settings) is not None:
        check_reachable(settings)  # even if this process is connected already: to what?
        connect_ray(settings)


def connect_ray(settings: Mapping[str, Any], *, dashboard: bool = False) -> bool:
    """Connect this process to the Ray that ``settings`` (the ``ray`` config group) names;
    returns whether a Ray was started or joined now (False: already connected).

    ``dashboard`` starts the local dashboard too: Ray Train's placement-group cleaner polls
    the state API it serves (and warns every few seconds without it). Joining a cluster that
    does not answer within ``connect_timeout_s`` ends the process with ``RayUnreachable``'s
    line (status 2): a connection attempt inside Ray cannot be interrupted otherwise.
    """
    import ray

    if ray.is_initialized():
        return False
    address = cluster_address(settings)
    with keeping_handlers():  # ray.init replaces the SIGTERM handler
        if address is None:
            if dashboard:
                _announce_local_dashboard()
            ray.init(num_cpus=settings.get("num_cpus"), include_dashboard=dashboard,
                     dashboard_port=int(os.environ[API_SERVER_ENV].rsplit(":", 1)[1])
                     if dashboard else None)
        else:
            check_reachable(settings)
            with _deadline(address, connect_timeout(settings)):
                ray.init(address=address)
    return True


def _announce_local_dashboard() -> None:
    """Pick the local dashboard's port and tell this process's Ray workers where it is."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ[API_SERVER_ENV] = f"http://127.0.0.1:{port}"  # Ray's workers inherit it


class _deadline:
    """Ends the process (status 2, one line) if the block is still running after ``seconds``."""

    def __init__(self, address: str, seconds: float) -> None:
        self.address, self.seconds = address, seconds
        self.done = threading.Event()

    def __enter__(self) -> None:
        threading.Thread(target=self._watch, daemon=True, name="ray-connect-deadline").start()

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()

    def _watch(self) -> None:
        if not self.done.wait(self.seconds):
            message = RayUnreachable("ray.address", f"Ray at {self.address} accepted a connection "
                                     f"but did not let this process join within {self.seconds:g} "
                                     "s; is it a Ray cluster (its GCS port, or ray://host:10001)?")
            command = f"crossmath.{Path(sys.argv[0]).stem}"
            os.write(2, f"{command}: {message}\n".encode())
            os._exit(2)


def _host_and_port(address: str) -> tuple[str, int]:
    """Where to knock: ``host:port`` of ``ray://host:port``, ``host:port`` or ``host``."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host:  # no port given: Ray's defaults
        return rest, 10001 if address.startswith("ray://") else 6379
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError("ray.address", f"{address!r} is not host:port, ray://host:port, "
                                         "auto or null") from None
