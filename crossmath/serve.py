"""``python -m crossmath.serve model=<name> server.port=8000``: any backend as an OpenAI-compatible server.

See ``crossmath.models.openai_server`` and docs/serving.md for what it serves; ``conf/serve.yaml``
for its options.
"""

from __future__ import annotations

import hydra
import uvicorn
from omegaconf import DictConfig

from crossmath.models.config import backend_arguments
from crossmath.models.openai_server import create_app
from crossmath.runtime.entry import command
from crossmath.settings.serve import ServeSettings


@command("crossmath.serve", config_name="serve", door=ServeSettings.from_config)
def main(cfg: DictConfig) -> None:
    """Serve the model of ``conf/serve.yaml`` (``model=<name>``) until interrupted."""
    settings = ServeSettings.from_config(cfg)  # the door: before the model loads
    backend = hydra.utils.instantiate(backend_arguments(settings.model))
    app = create_app(
        backend,
        served_model_name=settings.served_model_name,
        api_key=settings.api_key,
        max_batch_size=settings.max_batch_size,
        batch_wait_s=settings.batch_wait_s,
        faults=settings.faults,
    )
    # uvicorn.Server, not uvicorn.run: run swallows the stop that the server re-raises once it
    # has shut down gracefully, and the command would exit 0 instead of 130 or 143
    uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                  log_level=settings.log_level)).run()


if __name__ == "__main__":
    main()
