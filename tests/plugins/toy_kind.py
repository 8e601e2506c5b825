"""A toy method kind trained on a named train set, kept outside iadbench (a plugin kind).

Config: ``kind: "toy_kind:ToyParams"`` with ``tests/plugins`` on PYTHONPATH. Torch-free, as
every kind's parameter module must be: the DAG build reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iadbench.methods.params import Needs, Params


@dataclass(frozen=True)
class ToyParams(Params):
    """Linear autoencoder on cached patch features; score = reconstruction error."""

    implementation: ClassVar[str] = "toy_model:ToyAutoencoder"

    hidden: int = 4
    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.01

    def needs(self) -> Needs:
        return Needs(frozenset({"features"}), "train_set")

    def describe(self, state: dict) -> dict:
        return {"epochs_trained": state.get("epochs"), "final_loss": state.get("final_loss")}
