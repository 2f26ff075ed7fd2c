"""``model=reader``: a plain pipeline that reads the puzzle's picture, then solves what it read.

If an OCR engine and an exact solver solve most image puzzles, a VLM's low image score is not
for want of information in the picture. The reader:

- **image and hybrid requests**: reads the grid in the request's image
  (``crossmath.reading``: the lattice, each cell's fill and ink, operators and ``=`` by
  template matching, numbers by the OCR engine, ``crossmath.models.ocr``) and gives the
  solver what it read: the answer is the values of the cells it read as blanks when the grid
  read has exactly one solution. A cell it could not read is an unknown to the solver (a
  number) or leaves its equation out (an operator); an unsolvable or ambiguous reading gets
  no answer, so it is scored wrong, never guessed. A hybrid request's text grid is not used:
  the reader reads the picture;
- **the probe's ``transcribe`` requests**: the grid it read, as a markdown table, an unread
  cell written ``unread``;
- **text requests** (and the probe's ``transcribed`` ones): the oracle's answer.

It is deterministic and needs no GPU: one onnxruntime thread per backend (``threads``), and a
picture shown by several requests (image, hybrid and transcribe of one puzzle and style) is
read once. The engine, its version and the reading's version are part of the backend's
identity (its contract's weights, ``OcrEngine``).
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from PIL import Image

from crossmath.metrics.transcription import TRANSCRIBE
from crossmath.models.base import ModelRequest
from crossmath.models.baselines import OracleBackend, _RuleBackend, solution_reply
from crossmath.models.contract import BackendContract, always_greedy
from crossmath.models.ocr import EngineUnavailable, TextRecognizer, engine_identity
from crossmath.models.weights import IdentityError, WeightsIdentity
from crossmath.reading import DIGITS, READING_VERSION, GridReading, LatticeNotFound, read_grid

READS_IMAGE = ("image", "hybrid", TRANSCRIBE)
CACHED_READINGS = 64  # pictures whose reading is kept (a call holds a unit's requests together)


@dataclass(frozen=True)
class OcrEngine:
    """The reader's weights: the OCR engine (package, version, model file) and the reading's
    version shape its answers. An engine that is missing is the user's to fix (the ``reader``
    extra), said in one line before any work starts."""

    def identity(self, arguments: Mapping[str, Any]) -> WeightsIdentity:
        try:
            return WeightsIdentity({"ocr": {**engine_identity(), "reading": READING_VERSION}})
        except EngineUnavailable as error:
            raise IdentityError(str(error)) from None


class ReaderBackend(_RuleBackend):
    """Reads the picture (grid finding, template matching, OCR), then solves it."""

    contract = BackendContract(weights=OcrEngine(), greedy=always_greedy)

    def __init__(self, name: str = "reader", threads: int = 1) -> None:
        self.name = name
        self._oracle = OracleBackend(name)
        self._recognizer = TextRecognizer(threads)
        self._readings: OrderedDict[str, GridReading | str] = OrderedDict()

    def answer(self, request: ModelRequest) -> str:
        if request.modality not in READS_IMAGE:
            return self._oracle.answer(request)
        if not request.prompt.images:
            return "The request shows no image, so I give no answer."
        reading = self.read(request.prompt.images[0])
        if isinstance(reading, str):
            return f"{reading}, so I give no answer."
        if request.modality == TRANSCRIBE:
            return f"{_describe(reading)}\n<answer>\n{reading.to_markdown()}\n</answer>"
        return f"{_describe(reading)}\n{solution_reply(reading.solver_grid(), reading.blanks)}"

    def read(self, image: bytes) -> GridReading | str:
        """The grid read from an encoded image, or why none could be read."""
        key = hashlib.sha256(image).hexdigest()
        if key in self._readings:
            self._readings.move_to_end(key)
            return self._readings[key]
        try:
            with Image.open(io.BytesIO(image)) as decoded:
                pixels = np.asarray(decoded.convert("RGB"))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            reading: GridReading | str = f"The image cannot be decoded ({error})"
        else:
            try:
                reading = read_grid(pixels, self._read_numbers)
            except LatticeNotFound as error:
                reading = f"I find no grid in the image ({error})"
        self._readings[key] = reading
        if len(self._readings) > CACHED_READINGS:
            self._readings.popitem(last=False)
        return reading

    def _read_numbers(self, crops: list[np.ndarray]) -> list[str | None]:
        return [text or None for text in self._recognizer.read(crops, DIGITS)]


def _describe(reading: GridReading) -> str:
    lattice = reading.lattice
    found = (f"I read a grid of {lattice.rows} rows and {lattice.cols} columns "
             f"({lattice.pitch} px cells)")
    unread = reading.unread
    if not unread:
        return found + "."
    cells = ", ".join(f"row {r + 1} column {c + 1}" for r, c in unread)
    return f"{found}; I could not read {len(unread)} cell(s): {cells}."
