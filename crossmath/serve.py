"""``python -m crossmath.serve model=<name> server.port=8000``: any backend as an OpenAI-compatible server.

See ``crossmath.models.openai_server`` and docs/serving.md for what it serves; ``conf/serve.yaml``
for its options.
"""

from __future__ import annotations

import os

import hydra
import uvicorn
from omegaconf import DictConfig, OmegaConf

from crossmath.core.errors import ConfigError
from crossmath.models.config import backend_arguments
from crossmath.models.openai_server import FaultPlan, create_app
from crossmath.runtime.entry import command
from crossmath.settings.checks import model_options, non_negative_number, whole_number


def checked_server(cfg: DictConfig) -> tuple[dict, str | None]:
    """The model config and the API key (None: no key asked), every server option checked."""
    settings = cfg.server
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model_options(model)
    whole_number(settings.port, "server.port", minimum=0, maximum=65535)  # 0: any free port
    whole_number(settings.max_batch_size, "server.max_batch_size")
    non_negative_number(settings.batch_wait_s, "server.batch_wait_s")
    api_key = None
    if settings.api_key_env:
        api_key = os.environ.get(settings.api_key_env)
        if not api_key:
            raise ConfigError("server.api_key_env", f"names {settings.api_key_env!r}, which is "
                                                    "not set in the environment")
    return model, api_key


@command("crossmath.serve", config_name="serve", door=checked_server)
def main(cfg: DictConfig) -> None:
    """Serve ``cfg.model`` until interrupted."""
    settings = cfg.server
    model, api_key = checked_server(cfg)
    backend = hydra.utils.instantiate(backend_arguments(model))
    app = create_app(
        backend,
        served_model_name=settings.served_model_name,
        api_key=api_key,
        max_batch_size=settings.max_batch_size,
        batch_wait_s=settings.batch_wait_s,
        faults=FaultPlan(**settings.faults),
    )
    # uvicorn.Server, not uvicorn.run: run swallows the stop that the server re-raises once it
    # has shut down gracefully, and the command would exit 0 instead of 130 or 143
    uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                  log_level=settings.log_level)).run()


if __name__ == "__main__":
    main()
