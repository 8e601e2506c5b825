"""view_patchcore's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.methods.multimodal.params import ENTRY_KEYS, MultimodalParams, encoders_param
from iadbench.methods.params import param
from iadbench.methods.shared import (
    knn_backend_param,
    n_starts_param,
    num_nn_param,
    projection_dim_param,
)

AGGREGATES = ("max", "mean")


@dataclass(frozen=True)
class ViewPatchCoreParams(MultimodalParams):
    """PatchCore on the post-weld photos (METHODS §6.3, image-only baseline).

    Memory bank: the patch tokens of every TRAIN view, reduced by the approximate greedy coreset
    (``coreset`` fraction, ``projection_dim``, ``n_starts``); view score = max over its patches
    of the mean distance to the ``num_nn`` nearest bank patches; run score = ``aggregate`` (max
    or mean) over the run's views.
    """

    implementation: ClassVar[str] = "iadbench.methods.view_patchcore.method:ViewPatchCore"
    kind_name: ClassVar[str] = "view_patchcore"
    roles: ClassVar[tuple[str, ...]] = ("photo",)
    entry_keys: ClassVar[dict[str, str]] = {
        **ENTRY_KEYS,
        "seed": "the coreset's random projection and starts",
    }

    encoders: dict = encoders_param("photo", doc="role -> key of encoders (a photo encoder)")
    coreset: float = param(
        0.1,
        "fraction of the TRAIN views' patches kept by the greedy coreset (1 = all)",
        exclusiveMinimum=0,
        maximum=1,
    )
    projection_dim: int = projection_dim_param()
    n_starts: int = n_starts_param()
    num_nn: int = num_nn_param()
    knn_backend: str = knn_backend_param()
    aggregate: str = param(
        "max",
        "run score from its views' scores (each the max patch distance)",
        enum=list(AGGREGATES),
    )

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "bank_size": state.get("bank_size"),
            "coreset": float(self.coreset),
            "aggregate": self.aggregate,
        }
