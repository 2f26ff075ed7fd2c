"""Backends that misbehave on purpose, to exercise the pipeline's resume and retry paths.

``SlowBackend`` answers like the oracle (``SlowRandomBackend`` like chance, a different answer
per sample) after a delay per request, so a run can be stopped halfway. ``CrashingBackend``
kills its own worker process on its first batch (once per marker file), as an out-of-memory
kill or a lost node would, so Ray's actor restart is tested for real. ``ImageDecodingOracle``
decodes every image it is shown, as a VLM's processor does, and fails the requests whose image
does not decode, as the HF backend does.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Sequence

from PIL import Image

from crossmath.models.base import ModelRequest, ModelResponse
from crossmath.models.baselines import OracleBackend, RandomBackend


class _Slow:
    delay_s: float

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        time.sleep(self.delay_s * len(requests))
        return super().generate(requests)  # type: ignore[misc]


class SlowBackend(_Slow, OracleBackend):
    def __init__(self, name: str = "slow-oracle", delay_s: float = 0.05) -> None:
        super().__init__(name)
        self.delay_s = delay_s


class SlowRandomBackend(_Slow, RandomBackend):
    def __init__(self, name: str = "slow-random", seed: int = 0, delay_s: float = 0.05) -> None:
        super().__init__(name, seed)
        self.delay_s = delay_s


class ImageDecodingOracle(OracleBackend):
    def __init__(self, name: str = "decoding-oracle") -> None:
        super().__init__(name)

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        readable = [r for r in requests if all(_decodes(png) for png in r.prompt.images)]
        answers = {r.request_id: r for r in super().generate(readable)}
        return [answers.get(r.request_id) or ModelResponse(
                    r.request_id, "", error="UnidentifiedImageError: cannot identify image file")
                for r in requests]


def _decodes(png: bytes) -> bool:
    try:
        Image.open(io.BytesIO(png)).load()
    except Exception:
        return False
    return True


class CrashingBackend(OracleBackend):
    def __init__(self, marker: str, name: str = "crashing-oracle") -> None:
        super().__init__(name)
        self.marker = Path(marker)

    def generate(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # the process dies mid-batch, without cleanup
        return super().generate(requests)
