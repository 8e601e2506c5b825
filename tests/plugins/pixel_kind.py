"""A toy image-reading kind whose needs depend on its parameters (a plugin kind).

``shots: 0`` is zero-shot (no model state at all); ``shots: k`` fits a per-category mean image
on k normal training images. Torch-free: the DAG build reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iadbench.methods.params import Needs, Params


@dataclass(frozen=True)
class PixelParams(Params):
    """Per-pixel distance to a reference: the image's own mean (zero-shot) or a mean image."""

    implementation: ClassVar[str] = "pixel_model:PixelDistance"

    shots: int = 0

    def needs(self) -> Needs:
        return Needs(frozenset({"images"}), "per_category" if self.shots else "none")

    def describe(self, state: dict) -> dict:
        return {"shots": self.shots, "references": state.get("references")}
