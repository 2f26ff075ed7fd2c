"""What every prompt set is made of: the layout of one puzzle's prompt before its image exists,
the modalities a puzzle prompt is made for, and the error of a prompt set that cannot be used.

The shipped YAML sets (``prompts``) and the release's instructions (``release_prompt``) both
lay prompts out this way; they share these pieces from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from crossmath.core.errors import UserError
from crossmath.models.base import MODALITIES, Prompt


class PromptTemplateError(UserError, ValueError):
    """A prompt set file that cannot be used, naming the file and the field at fault."""


@dataclass(frozen=True)
class PromptLayout:
    """A puzzle prompt before its image exists: the text parts, and where the image goes.

    ``image_at`` is the index in ``texts`` before which the image stands (None: no image,
    the text modality).
    """

    texts: tuple[str, ...]
    image_at: int | None

    def with_image(self, image: bytes | None) -> Prompt:
        """The finished prompt; the image is required exactly when the layout has a place for it."""
        if (image is None) != (self.image_at is None):
            raise ValueError("an image is needed exactly for the image and hybrid modalities")
        if image is None:
            return Prompt(self.texts)
        return Prompt(self.texts, (image,), (self.image_at,))


def check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
