"""An evaluation's predictions as an MLflow table (``log_table``): browsable in the run's
artifacts and in the experiment's "Artifact evaluation" view, loadable with ``load_table``.

Images are logged once each under ``table_images/``, as lossless WebP (the very pixels the
model was shown, about a seventh of the PNG's bytes), and the table's ``image`` cells refer to
them in MLflow's own image-cell form (``{"type": "image", "filepath": ...}``), which the UI
draws; ``log_table`` would instead store two files per row (a puzzle's image is shown to many
requests: every sample, image and hybrid). A row without an image has None there.

``log_table`` appends to a table already logged under the same name; a resumed evaluation
replaces its table instead (one row per prediction, however often it was resumed).
"""

from __future__ import annotations

import io
import logging
import posixpath
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from PIL import Image

TABLE_FILE = "evaluation_table.json"
IMAGE_DIR = "table_images"
IMAGE_COLUMN = "image"

log = logging.getLogger(__name__)


def image_file(name: str) -> str:
    """Where the image ``name`` (as the rows name it) is stored: a ``.webp`` file."""
    return posixpath.join(IMAGE_DIR, f"{name}.webp")


def image_cell(name: str | None) -> dict[str, str] | None:
    """The cell MLflow's table view draws as the image ``name`` (also its thumbnail)."""
    if name is None:
        return None
    path = image_file(name)
    return {"type": "image", "filepath": path, "compressed_filepath": path}


def lossless_webp(image: bytes) -> bytes:
    with Image.open(io.BytesIO(image)) as opened:
        out = io.BytesIO()
        opened.save(out, format="WEBP", lossless=True)
    return out.getvalue()


def _encoded(images: Mapping[str, bytes]) -> dict[str, bytes]:
    """Each image as lossless WebP; one that cannot be read (a release file truncated in
    transfer: its requests failed and say so) is left out with a warning, its cells empty."""
    encoded = {}
    for name, image in images.items():
        try:
            encoded[name] = lossless_webp(image)
        except (OSError, SyntaxError, ValueError) as error:  # what Pillow raises on bad bytes
            log.warning("evaluation table: image %s left out, it cannot be read (%s)", name,
                        error)
    return encoded


def log_evaluation_table(tracking_uri: str, run_id: str, rows: Sequence[Mapping[str, Any]],
                         images: Mapping[str, bytes], columns: Sequence[str]) -> None:
    """``rows`` (``columns``, one per prediction) as the run's ``TABLE_FILE``; the ``image``
    cells name entries of ``images`` (encoded images, PNG...), logged under ``IMAGE_DIR``. A
    table the run already has is replaced."""
    client = MlflowClient(tracking_uri)
    encoded = _encoded(images)
    if encoded:
        with tempfile.TemporaryDirectory(prefix="crossmath-table-images-") as folder:
            for name, webp in encoded.items():
                (Path(folder) / f"{name}.webp").write_bytes(webp)
            client.log_artifacts(run_id, folder, artifact_path=IMAGE_DIR)
    cells = [{**row, IMAGE_COLUMN: image_cell(row[IMAGE_COLUMN])
              if row.get(IMAGE_COLUMN) in encoded else None} for row in rows]
    frame = pd.DataFrame(cells, columns=list(columns), dtype=object)
    if TABLE_FILE in {entry.path for entry in client.list_artifacts(run_id)}:
        repository = get_artifact_repository(client.get_run(run_id).info.artifact_uri,
                                             tracking_uri=tracking_uri)
        repository.delete_artifacts(TABLE_FILE)
    client.log_table(run_id, data=frame, artifact_file=TABLE_FILE)
