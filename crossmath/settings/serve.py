"""``crossmath serve``'s door: ``conf/serve.yaml`` checked and read into ``ServeSettings``
(the model config as plain values, the API key read from the environment) before any model
loads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from crossmath.core.errors import ConfigError
from crossmath.models.openai_server import FaultPlan
from crossmath.settings.checks import model_options, non_negative_number, validated, whole_number


@dataclass(frozen=True)
class ServeSettings:
    """The model config to serve (checked), the API key clients must send (None: no key
    asked) and the server's options (``server`` in ``conf/serve.yaml``)."""

    model: dict[str, Any]
    api_key: str | None
    host: str
    port: int
    served_model_name: str
    max_batch_size: int
    batch_wait_s: float
    log_level: str
    faults: FaultPlan

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "ServeSettings":
        server = cfg.server
        model = OmegaConf.to_container(cfg.model, resolve=True)
        model_options(model)
        whole_number(server.port, "server.port", minimum=0, maximum=65535)  # 0: any free port
        whole_number(server.max_batch_size, "server.max_batch_size")
        non_negative_number(server.batch_wait_s, "server.batch_wait_s")
        api_key = None
        if server.api_key_env:
            api_key = os.environ.get(server.api_key_env)
            if not api_key:
                raise ConfigError("server.api_key_env", f"names {server.api_key_env!r}, which "
                                                        "is not set in the environment")
        faults = validated(lambda: FaultPlan(**server.faults), "server.faults")
        return cls(model=model, api_key=api_key, host=server.host, port=server.port,
                   served_model_name=server.served_model_name,
                   max_batch_size=server.max_batch_size, batch_wait_s=server.batch_wait_s,
                   log_level=server.log_level, faults=faults)
