"""The CrossMath release's own instructions, read at run time from its ``instruction_template.py``.

The release's inference script builds every prompt from string constants in that file. Their
text belongs to the release and is never copied into this project: the file is fetched from
the official repository at a pinned commit (cached under ``~/.cache/crossmath/release/``), or
read from a path the user gives (``model.prompt=/path/to/instruction_template.py``, e.g. on a
machine without internet). The file is parsed, never executed (``pinned_files``).

Per modality the release sends one user turn of these parts, in this order:

1. one instruction text: ``GENERAL_TASK_DESCRIPTION`` + the modality's input description
   (``TEXT_ONLY_``, ``IMAGE_ONLY_`` or ``HYBRID_INPUT_DESCRIPTION``) +
   ``OUTPUT_FORMAT_DESCRIPTION`` + ``TASK_DESCRIPTION``, concatenated as they are;
2. the puzzle's markdown table as a second text part (text and hybrid);
3. the image, last (image and hybrid).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from crossmath.models.pinned_files import fetch_pinned_file, string_constants
from crossmath.models.prompt_parts import PromptLayout, check_modality

RELEASE_PROMPT = "release"  # the prompt-set name that selects the release's instructions
RELEASE_REPOSITORY = "xuyige/CrossMath"
RELEASE_COMMIT = "89bc330030ae6235fc72aaa5e769f53fa0ca29cc"
TEMPLATE_FILE = "instruction_template.py"
TEMPLATE_URL = (f"https://raw.githubusercontent.com/{RELEASE_REPOSITORY}/{RELEASE_COMMIT}/"
                f"{TEMPLATE_FILE}")
CACHE_DIR = Path("~/.cache/crossmath/release").expanduser()

INPUT_DESCRIPTIONS = {
    "text": "TEXT_ONLY_INPUT_DESCRIPTION",
    "image": "IMAGE_ONLY_INPUT_DESCRIPTION",
    "hybrid": "HYBRID_INPUT_DESCRIPTION",
}
REQUIRED_CONSTANTS = ("GENERAL_TASK_DESCRIPTION", *INPUT_DESCRIPTIONS.values(),
                      "OUTPUT_FORMAT_DESCRIPTION", "TASK_DESCRIPTION")


@dataclass(frozen=True)
class ReleaseInstructions:
    """The release's instruction texts, as read from one ``instruction_template.py``."""

    constants: Mapping[str, str]
    source: str

    @property
    def id(self) -> str:
        """``release-`` and a hash of the texts used: recorded with every prediction."""
        texts = "\x00".join(self.constants[name] for name in REQUIRED_CONSTANTS)
        return f"{RELEASE_PROMPT}-{hashlib.sha256(texts.encode('utf-8')).hexdigest()[:12]}"

    def instruction(self, modality: str) -> str:
        check_modality(modality)
        c = self.constants
        return (c["GENERAL_TASK_DESCRIPTION"] + c[INPUT_DESCRIPTIONS[modality]]
                + c["OUTPUT_FORMAT_DESCRIPTION"] + c["TASK_DESCRIPTION"])

    def layout(self, modality: str, grid: str, n_blanks: int,
               value_range: tuple[int, int]) -> PromptLayout:
        """The release's parts: the instruction, the table (text, hybrid), the image last."""
        texts = (self.instruction(modality),) + (() if modality == "image" else (grid,))
        return PromptLayout(texts, None if modality == "text" else len(texts))


def read_release_instructions(path: str | Path) -> ReleaseInstructions:
    """The instructions in an ``instruction_template.py``, parsed without running it."""
    constants = string_constants(path, REQUIRED_CONSTANTS,
                                 f"the release's instructions ({TEMPLATE_FILE})")
    return ReleaseInstructions(constants, str(path))


def fetch_release_template(url: str = TEMPLATE_URL, cache_dir: str | Path = CACHE_DIR) -> Path:
    """The release's ``instruction_template.py``, downloaded once into ``cache_dir/<commit>``."""
    return fetch_pinned_file(
        url, Path(cache_dir).expanduser() / RELEASE_COMMIT / TEMPLATE_FILE,
        f"download {TEMPLATE_FILE} of {RELEASE_REPOSITORY} at commit {RELEASE_COMMIT} and "
        f"pass model.prompt=/path/to/{TEMPLATE_FILE}")


def load_release_instructions(name_or_path: str | Path) -> ReleaseInstructions:
    """``"release"`` (fetched at the pinned commit, cached) or the path of such a file."""
    if str(name_or_path) == RELEASE_PROMPT:
        return read_release_instructions(fetch_release_template())
    return read_release_instructions(Path(name_or_path).expanduser())


def is_release_instructions(name_or_path: str | Path) -> bool:
    """Whether a prompt-set name selects the release's instructions rather than a YAML set."""
    return str(name_or_path) == RELEASE_PROMPT or str(name_or_path).endswith(".py")
