"""Parameter parts several kinds share, torch-free: value lists, schemas and declarations.

The torch modules that use one of these lists (:mod:`.knn`) import it from here, so the list a
parameter allows and the one the code accepts are the same object.
"""

from __future__ import annotations

from typing import Any

from iadbench.methods.params import param

KNN_BACKENDS = ("auto", "faiss", "torch")
CLASS_NAMES = ("auto", "object")
# CLIP blocks: 0-based indices (negative from the end), or "lastN".
BLOCK_LIST = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "integer"}}
LAST_N = {"type": "string", "pattern": "^last[1-9][0-9]*$"}
# The Gaussian blur's border (:func:`iadbench.methods.smoothing.smooth_map`), in scipy.ndimage's
# terms: ``reflect`` repeats the edge pixel (d c b a | a b c d), ``mirror`` does not
# (d c b | a b c d), which is torch's ``F.pad(mode="reflect")`` and so anomalib's GaussianBlur2d.
BLUR_BORDERS = ("reflect", "mirror")


def class_name_param() -> Any:
    return param(
        "auto",
        "auto = the dataset's class_names (default the category, _ as spaces); object = the word",
        enum=list(CLASS_NAMES),
    )


def knn_backend_param() -> Any:
    return param(
        "auto",
        "nearest-neighbour search; auto = torch on every device (faster than faiss's flat index "
        "on CPU, see docs/performance.md); both give true L2 distances",
        enum=list(KNN_BACKENDS),
    )


def projection_dim_param() -> Any:
    """The greedy coreset's projection width (patchcore, view_patchcore: one coreset)."""
    return param(
        128, "random projection width of the greedy coreset's distance computations", minimum=1
    )


def n_starts_param() -> Any:
    return param(10, "random starting points of the greedy coreset", minimum=1)


def num_nn_param() -> Any:
    return param(1, "bank neighbours whose mean distance is a patch's score", minimum=1)


def blur_border_param() -> Any:
    """How the map's Gaussian blur extends the border (patchcore, padim: one blur)."""
    return param(
        "reflect",
        "border of the map's Gaussian blur: reflect (scipy's, the edge pixel repeated) or mirror "
        "(not repeated: torch's reflect padding, anomalib's blur); differs within ~2 sigma of the "
        "border only",
        enum=list(BLUR_BORDERS),
    )


def fusion_param(default: str, doc: str) -> Any:
    """``fusion:`` of the kinds that read cached backbone features."""
    from iadbench.features.fusion import SCHEMA  # numpy only

    return param(default, doc, schema=SCHEMA)


def check_fusion(fusion: str | dict) -> None:
    """Reject a ``fusion:`` the feature code cannot parse, without importing more than numpy."""
    from iadbench.features.fusion import Fusion

    Fusion.from_config(fusion)


def describe_features(state: dict) -> dict[str, Any]:
    """Columns of methods that fit on cached backbone features (see ``Method.save_state``)."""
    features = state.get("features") or {}
    return {
        "backbone_model": features.get("model"),
        "weights": features.get("weights"),
        "feature_dim": state.get("feature_dim"),
        "fusion": (state.get("fusion") or {}).get("mode"),
    }
