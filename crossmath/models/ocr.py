"""The reader's OCR engine: RapidOCR's PP-OCRv4 text recognition model, run by onnxruntime.

The engine is the optional extra ``reader`` (``pip install -c constraints.txt -e '.[reader]'``):
the package ``rapidocr-onnxruntime`` carries the ONNX models, ``onnxruntime`` runs them on the
CPU. The reader finds the grid itself, so it needs no text detector: it shows the recognition
model the crops of the number cells laid side by side on one text line, and decodes the
model's output here, by CTC greedy decoding over the characters a cell may hold
(``alphabet``), each character going to the crop under it. The engine's own decoder reads over its whole
6,623-character dictionary, where ``+`` comes back as the CJK ``十`` and ``=`` is often
missed; ``alphabet=None`` reproduces that for comparison (docs/reader.md).

Neither the engine's Python code nor OpenCV (which it depends on, and whose ``opencv-python``
build needs the system's libGL) is imported: only onnxruntime, numpy and Pillow, so the reader
runs on a machine that has nothing but Python.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ENGINE_DISTRIBUTION = "rapidocr-onnxruntime"
RUNTIME_DISTRIBUTION = "onnxruntime"
ENGINE_PACKAGE = "rapidocr_onnxruntime"  # the engine's import name: where its models lie
RECOGNITION_MODEL = "models/ch_PP-OCRv4_rec_infer.onnx"
INSTALL_HINT = "pip install -c constraints.txt -e '.[reader]'"

# What the model is shown, as the engine prepares a text line: height 48, the line's aspect
# kept, BGR channels scaled to [-1, 1] (0 is the padding). The crops of one call are laid side
# by side on one line, GAP px apart, at most LINE_CROPS to a line: each crop alone, padded to
# the engine's 320 px, costs several times as much, and padded less it misreads lone
# handwritten ``1``s (docs/reader.md).
INPUT_HEIGHT = 48
GAP = 48
LINE_CROPS = 24
STEP_PX = 8  # input pixels per output step of the model
BLANK_INDEX = 0  # CTC's blank; the dictionary's characters follow, then a space


class EngineUnavailable(ImportError):
    """The OCR engine (the ``reader`` extra) is not installed here."""


def missing_engine(missing: str) -> EngineUnavailable:
    return EngineUnavailable(
        f"model=reader needs the OCR engine, the optional extra 'reader' ({missing} is not "
        f"installed): {INSTALL_HINT}")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise missing_engine(distribution) from None


def recognition_model_path() -> Path:
    """The recognition model's file inside the installed engine (the package is not imported)."""
    _version(ENGINE_DISTRIBUTION)
    spec = importlib.util.find_spec(ENGINE_PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    path = Path(locations[0]) / RECOGNITION_MODEL if locations else None
    if path is None or not path.is_file():
        raise missing_engine(f"{ENGINE_DISTRIBUTION}'s {RECOGNITION_MODEL}")
    return path


@cache
def engine_identity() -> dict[str, Any]:
    """What shapes the engine's readings: its package and version, onnxruntime's version and
    the recognition model's bytes. Raises ``EngineUnavailable`` when the extra is missing."""
    path = recognition_model_path()
    return {
        "engine": ENGINE_DISTRIBUTION,
        "version": _version(ENGINE_DISTRIBUTION),
        "runtime": f"{RUNTIME_DISTRIBUTION} {_version(RUNTIME_DISTRIBUTION)}",
        "model": RECOGNITION_MODEL,
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "input": {"height": INPUT_HEIGHT, "gap": GAP, "line_crops": LINE_CROPS,
                  "channels": "BGR"},
    }


class TextRecognizer:
    """The recognition model in one onnxruntime session (``threads`` intra-op threads)."""

    def __init__(self, threads: int = 1) -> None:
        path = recognition_model_path()
        try:
            import onnxruntime
        except ImportError:
            raise missing_engine(RUNTIME_DISTRIBUTION) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        dictionary = self.session.get_modelmeta().custom_metadata_map["character"].splitlines()
        self.characters = ["", *dictionary, " "]
        self._index = {char: i for i, char in enumerate(self.characters) if i}

    def read(self, crops: Sequence[np.ndarray], alphabet: str | None) -> list[str]:
        """The text of each RGB crop (one short line of text each), decoded over ``alphabet``
        only (None: the engine's whole dictionary), in lines of up to LINE_CROPS crops."""
        allowed = np.array([BLANK_INDEX, *(range(1, len(self.characters)) if alphabet is None
                                           else (self._index[char] for char in alphabet))])
        texts: list[str] = []
        for first in range(0, len(crops), LINE_CROPS):
            texts += self._read_line(crops[first:first + LINE_CROPS], allowed)
        return texts

    def _read_line(self, crops: Sequence[np.ndarray], allowed: np.ndarray) -> list[str]:
        """One model call on the crops laid on one line; each character read goes to the crop
        under it (by the position of its output step)."""
        images = [_model_input(crop) for crop in crops]
        starts = np.cumsum([0, *(image.shape[2] + GAP for image in images)])[:-1] + GAP // 2
        width = -(-(int(starts[-1]) + images[-1].shape[2] + GAP // 2) // STEP_PX) * STEP_PX
        line = np.zeros((1, 3, INPUT_HEIGHT, width), dtype=np.float32)
        for start, image in zip(starts, images):
            line[0, :, :, start:start + image.shape[2]] = image
        steps = self.session.run(None, {self._input: line})[0][0][:, allowed]
        owners = np.searchsorted(starts - GAP // 2, (np.arange(len(steps)) + 0.5)
                                 * (width / len(steps)), side="right") - 1
        texts = [""] * len(crops)
        previous, previous_owner = 0, -1
        for choice, owner in zip(steps.argmax(axis=1), owners):  # choice 0: the blank
            if choice != 0 and (choice != previous or owner != previous_owner):
                texts[owner] += self.characters[allowed[choice]]
            previous, previous_owner = choice, owner
        return texts


def _model_input(crop: np.ndarray) -> np.ndarray:
    """An RGB crop as the model's (3, 48, width) float input, BGR, scaled to [-1, 1]."""
    height, width = crop.shape[:2]
    resized_width = max(1, round(INPUT_HEIGHT * width / height))
    image = Image.fromarray(np.ascontiguousarray(crop)).resize(
        (resized_width, INPUT_HEIGHT), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)[:, :, ::-1]  # the engine's models read BGR
    return (pixels.transpose(2, 0, 1) / 127.5) - 1.0
