"""One results folder per evaluation: where it lies, and its manifest ``evaluation.json``.

Without ``out_dir`` an evaluation's folder is ``<runs_dir>/<model>/<data>/<evaluation id>``
(the id's first ``SHORT_ID`` characters): evaluations that differ in anything that shapes a
prediction or a score never share a folder, and the same evaluation always finds its own
again. A folder given as ``out_dir`` holds one evaluation too: a run whose evaluation differs
from the one recorded there is refused, with the settings that differ named, rather than
mixing the two evaluations' predictions. A folder with predictions but no manifest (written
by an older crossmath) is refused the same way.

The manifest is the first file a run writes, before any model loads, so an out_dir that
cannot be written fails at once. It records the evaluation's id, the settings it was computed
from and the id of its MLflow run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

from crossmath.core.errors import UserError
from crossmath.pipeline.shards import PredictionStore, read_text, write_text

MANIFEST_FILE = "evaluation.json"
SHORT_ID = 12
MAX_LISTED = 8


class ResultsFolderError(UserError, ValueError):
    """An out_dir that holds another evaluation, or something unreadable."""


@dataclass(frozen=True)
class Manifest:
    evaluation_id: str
    model: str
    data: str
    settings: dict[str, Any]  # backend settings as hashed, data identity, plan
    mlflow_run_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"


def default_out_dir(runs_dir: str, model: str, data: str, evaluation_id: str) -> str:
    return f"{runs_dir.rstrip('/')}/{model}/{data}/{evaluation_id[:SHORT_ID]}"


def claim_results_folder(store: PredictionStore, manifest: Manifest) -> Manifest:
    """The folder of ``store`` for this evaluation: its manifest as found there (a resumed
    evaluation, with its MLflow run id), or ``manifest`` written into a new folder."""
    location = f"{store.root}/{MANIFEST_FILE}"
    text = read_text(location)
    if text is None:
        if store.saved_request_ids():
            raise ResultsFolderError(
                f"out_dir {store.root} holds predictions but no {MANIFEST_FILE}: they come from "
                "an older crossmath or another evaluation; give another out_dir (or none)")
        write_text(location, manifest.to_json())
        return manifest
    try:
        found = Manifest(**json.loads(text))
    except (json.JSONDecodeError, TypeError) as error:
        raise ResultsFolderError(f"{location}: not a crossmath evaluation manifest ({error})") from None
    if found.evaluation_id != manifest.evaluation_id:
        raise ResultsFolderError(
            f"out_dir {store.root} holds another evaluation ({found.model} on {found.data}, "
            f"{found.evaluation_id[:SHORT_ID]}); this one ({manifest.evaluation_id[:SHORT_ID]}) "
            f"differs in {describe_differences(found.settings, manifest.settings)}. Give another "
            "out_dir, or none: each evaluation then gets its own folder under runs_dir")
    return found


def record_mlflow_run(store: PredictionStore, manifest: Manifest, run_id: str) -> Manifest:
    """The manifest with the evaluation's MLflow run id, saved."""
    if manifest.mlflow_run_id == run_id:
        return manifest
    updated = replace(manifest, mlflow_run_id=run_id)
    write_text(f"{store.root}/{MANIFEST_FILE}", updated.to_json())
    return updated


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``key: old -> new`` for each setting that differs (dotted keys), or what else can."""
    changed = _differences(old, new)
    if not changed:
        return "settings recorded by another version of crossmath"
    listed = "; ".join(changed[:MAX_LISTED])
    return listed + (f"; and {len(changed) - MAX_LISTED} more" if len(changed) > MAX_LISTED else "")


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, _UNSET), new.get(key, _UNSET)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            found += _differences(before, after, f"{prefix}{key}.")
        elif before != after:
            found.append(f"{prefix}{key}: {_shown(before)} -> {_shown(after)}")
    return found


_UNSET = object()


def _shown(value: Any) -> str:
    return "(unset)" if value is _UNSET else json.dumps(value, sort_keys=True)
