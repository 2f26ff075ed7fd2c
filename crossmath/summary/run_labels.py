"""How the comparison report names an evaluation: what was evaluated, read off its config.

Two evaluations of one model, one with an adapter, or one through an OpenAI-compatible server,
must not look alike in a comparison: a label says the model, the adapter (the last two parts of
its path: ``<training run>/adapter``) and the backend (``hf``, ``openai <served model> @ <host>``,
the oracle, chance), and the data when the compared evaluations do not all share it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath
from typing import Mapping, Sequence
from urllib.parse import urlparse

# Backend classes by the short name a reader knows them by.
BACKEND_NAMES = {"HFBackend": "hf", "OpenAIChatBackend": "openai", "OracleBackend": "oracle",
                 "RandomBackend": "random"}
_UNSET = ("", "None", "null")


def backend_label(params: Mapping[str, str]) -> str:
    """``hf``, ``openai <model> @ <host:port>``, ``oracle``, ... from the flattened config."""
    target = params.get("model._target_", "")
    name = BACKEND_NAMES.get(target.rsplit(".", 1)[-1], target.rsplit(".", 1)[-1] or "?")
    if name == "openai":
        host = urlparse(params.get("model.base_url", "")).netloc or "?"
        served = params.get("model.model", "?")
        return f"openai @ {host}" if served == params.get("model.name") else \
            f"openai {served} @ {host}"
    return name


def evaluation_label(params: Mapping[str, str], fallback: str, *, with_data: bool = False) -> str:
    """``<model> + <adapter> [<backend>]`` (and ``on <data>``), or ``fallback`` (the run's name)
    when the run recorded no config."""
    model = params.get("model.name")
    if not model:
        return fallback
    label = model
    adapter = params.get("model.adapter", "")
    if adapter not in _UNSET:
        label += " + " + "/".join(PurePosixPath(adapter.rstrip("/")).parts[-2:])
    label += f" [{backend_label(params)}]"
    if with_data and params.get("data.name"):
        label += f" on {params['data.name']}"
    return label


def evaluation_labels(runs: Sequence[tuple[Mapping[str, str], str]]) -> list[str]:
    """A distinct label for each ``(params, fallback)``: the data named when it differs, a
    number added where two are still alike."""
    with_data = len({params.get("data.name") for params, _ in runs}) > 1
    labels = [evaluation_label(params, fallback, with_data=with_data) for params, fallback in runs]
    alike = Counter(labels)
    seen: Counter[str] = Counter()
    for index, label in enumerate(labels):
        if alike[label] > 1:
            seen[label] += 1
            labels[index] = f"{label} #{seen[label]}"
    return labels
