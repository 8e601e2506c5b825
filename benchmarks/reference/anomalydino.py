"""AnomalyDINO: ours beside anomalib 2.7.0's ``AnomalyDINOModel`` at equal weights.

* weights: one random DINOv2 ViT-S/14 (timm ``vit_small_patch14_dinov2``, no registers, built at
  its native 518 px under ``torch.manual_seed(--weights-seed)``), saved once as a state dict;
  our side loads the file as a backbone ``weights: <path>`` (registry ``dinov2_vits14``,
  ``patch_size: 1``, ``token_norm: true``, ``smaller_edge: --dino-edge``), anomalib's model is
  built with ``pre_trained=False`` (nothing downloaded) and gets it with ``load_state_dict``;
  every tensor is checked equal.
* anomalib has no rotation augmentation: every row runs ours with ``rotation: false``.
* position grid: anomalib's ``TimmFeatureExtractor`` patches timm's resampling to
  ``antialias=False`` for the whole process; ours resamples bicubic without antialiasing by
  default (the backbone's ``interpolation``; the authors' DINOv2 hub code does the same, with
  its +0.1 scale offset: see docs/methods/dinov2.md). The ``posembed`` row runs ours with
  ``interpolation: bicubic_antialias`` (timm's default) to show what that switch changes.
* input: ``shared`` feeds anomalib our pre-processed tensor (PIL bicubic smaller edge on the
  uint8 image + ImageNet mean/std) -> isolates the method; ``own`` gives anomalib its own
  pre-processor (torchvision ``Resize(edge, bicubic, antialias)`` on the float image).
* our switches that reproduce anomalib's map: ``upsample: nearest`` (its ``F.interpolate``
  default) and ``blur_border: mirror`` (kornia's reflect padding); the authors' defaults are
  bilinear and scipy's reflect. anomalib masks references too when masking, i.e. ours with
  ``mask_references: true``.
* ``fp32`` rows compute our tokens and memory in float32 (the maths alone); ``store`` rows go
  through ``AnomalyDino.fit``/``score`` on fp16 tokens as the feature store keeps them.

Square demo images give a side that is a multiple of 14 at 448 px, so anomalib's centre crop to
a multiple of the patch and the authors' top-left crop (ours) coincide here.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .common import print_row, row, save_fixture

REFERENCE = "anomalib AnomalyDINOModel"
ARCH = "vit_small_patch14_dinov2"
BACKBONE = "dinov2_vits14"
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


# --dino-settings key -> (label, input, our upsample, our border, masking, our pos-embed
# resampling antialiased (interpolation bicubic_antialias), through the fp16 store and
# AnomalyDino.fit/score)
SETTINGS = {
    "authors": ("authors' map", "shared", "bilinear", "reflect", False, False, False),
    "anomalib": ("anomalib map", "shared", "nearest", "mirror", False, False, False),
    "masking": ("anomalib map, masking", "shared", "nearest", "mirror", True, False, False),
    "store": ("anomalib map, fp16 store", "shared", "nearest", "mirror", False, False, True),
    "posembed": ("anomalib map, pos antialias", "shared", "nearest", "mirror", False, True, False),
    "own": ("anomalib map, own input", "own", "nearest", "mirror", False, False, False),
}


def add_arguments(ap) -> None:
    g = ap.add_argument_group("anomalydino")
    g.add_argument("--dino-shots", nargs="+", type=int, default=[1, 2])
    g.add_argument("--dino-edge", type=int, default=448, help="smaller edge in px")
    g.add_argument("--dino-inputs", nargs="+", default=["shared", "own"], choices=["shared", "own"])
    g.add_argument(
        "--dino-settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), help="rows"
    )


def random_weights(path: Path, seed: int) -> dict[str, torch.Tensor]:
    """The random ViT-S/14 both sides load: timm's init under a fixed seed."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(ARCH, pretrained=False)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)
    return state


# --------------------------------------------------------------------------- anomalib side


def anomalib_model(state: dict, masking: bool):
    """anomalib's AnomalyDINOModel with ``state`` loaded (built without a download)."""
    from anomalib.models.image.anomaly_dino import torch_model

    real = torch_model.TimmFeatureExtractor

    def offline(*args, **kwargs):
        return real(*args, **{**kwargs, "pre_trained": False})

    torch_model.TimmFeatureExtractor = offline
    try:
        model = torch_model.AnomalyDINOModel(num_neighbours=1, encoder_name=ARCH, masking=masking)
    finally:
        torch_model.TimmFeatureExtractor = real
    vit = model.feature_encoder.feature_extractor
    vit.load_state_dict(state)
    for key, value in vit.state_dict().items():
        assert torch.equal(value, state[key]), key
    return model


def anomalib_input(images, edge: int) -> torch.Tensor:
    """anomalib's AnomalyDINO pre-processor (an int size keeps the aspect ratio)."""
    from anomalib.models.image.anomaly_dino.lightning_model import AnomalyDINO

    transform = AnomalyDINO.configure_pre_processor(image_size=edge).transform
    return torch.stack(
        [
            transform(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255.0)
            for im in images
        ]
    )


def run_anomalib(model, refs: torch.Tensor, test: torch.Tensor):
    model.memory_bank = torch.empty(0)
    model.embedding_store.clear()
    model.train()
    with torch.no_grad():
        model(refs)
    model.fit()
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        out = model(test)
    seconds = (time.perf_counter() - start) / len(test)
    return out.pred_score.double().numpy().ravel(), out.anomaly_map[:, 0].double().numpy(), seconds


# --------------------------------------------------------------------------- our side


def our_config(weights: Path, edge: int, interpolation: str | None = None, model=BACKBONE):
    """Our backbone entry (``interpolation`` None: the default, bicubic without antialias)."""
    from iadbench.features.extract import FeatureConfig

    return FeatureConfig(
        model=model,
        weights=str(weights),
        patch_size=1,
        token_norm=True,
        smaller_edge=edge,
        normalize="imagenet",
        interpolation=interpolation,
    )


def our_input(images, cfg, backbone) -> torch.Tensor:
    from iadbench.features.extract import normalise_images

    pixels = [cfg.image(im, backbone.patch) for im in images]
    return normalise_images(pixels, cfg.preprocessing(backbone.preprocessing))


def our_tokens(backbone, batch: torch.Tensor) -> np.ndarray:
    """(N, h, w, C) float32 tokens, the store's path before its fp16 cast."""
    from iadbench.features.patches import locally_aware_patches

    return locally_aware_patches(backbone.taps(batch), 1).numpy()


def our_method(upsample: str, border: str, masking: bool, shots: int):
    from iadbench.methods.anomalydino.method import AnomalyDino

    entry = {
        "kind": "anomalydino",
        "backbone": BACKBONE,
        "shots": shots,
        "rotation": False,
        "masking": masking,
        "mask_references": masking,
        "upsample": upsample,
        "blur_border": border,
    }
    return AnomalyDino(entry, device="cpu")


def score_fp32(method, refs: np.ndarray, test: np.ndarray, edge: int, masked: bool):
    """Our maths on float32 tokens: the memory as ``fit`` builds it, then ``_score``."""
    from iadbench.features.store import FeatureSet
    from iadbench.methods.anomalydino.method import keep_foreground, normalised

    rows = [
        t.reshape(-1, t.shape[-1])[keep_foreground(t)] if masked else t.reshape(-1, t.shape[-1])
        for t in refs
    ]
    bank = normalised(np.concatenate(rows), torch.device("cpu"))
    index = pd.DataFrame({"sample_id": [f"t{i}" for i in range(len(test))]})
    features = FeatureSet(test, index, {"smaller_edge": edge})
    return method._score(features, bank, masked, {"resize": edge}, (edge, edge))


def score_store(method, refs: np.ndarray, test: np.ndarray, edge: int, category: str):
    """``AnomalyDino.fit`` and ``score`` on fp16 tokens, as the pipeline runs them."""
    from iadbench.features.store import FeatureSet
    from iadbench.methods.base import MethodInputs

    meta = {"config_hash": "parity", "smaller_edge": edge}
    names = [f"ref{i:03d}" for i in range(len(refs))]
    ref_index = pd.DataFrame({"sample_id": names, "category": category, "image_path": names})
    test_index = pd.DataFrame({"sample_id": [f"t{i}" for i in range(len(test))]})
    with tempfile.TemporaryDirectory() as tmp:
        train = MethodInputs(ref_index, FeatureSet(refs.astype(np.float16), ref_index, meta))
        method.fit(train, Path(tmp))
        inputs = MethodInputs(
            test_index,
            FeatureSet(test.astype(np.float16), test_index, meta),
            dataset={"resize": edge},
        )
        return method.score(Path(tmp), inputs, (edge, edge))


def run(args, data) -> list[dict]:
    import anomalib

    from iadbench.methods.anomalydino.method import keep_foreground

    edge = args.dino_edge
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / f"{ARCH}_seed{args.weights_seed}.pt"
        state = random_weights(weights, args.weights_seed)
        print(
            f"weights: random {ARCH}, torch.manual_seed({args.weights_seed}), "
            f"{sum(v.numel() for v in state.values()) / 1e6:.1f} M values -> {weights.name}"
        )
        cfg = our_config(weights, edge)
        backbones = {
            aa: our_config(weights, edge, "bicubic_antialias" if aa else None).load_backbone(
                torch.device("cpu")
            )
            for aa in (False, True)
        }
        backbone = backbones[False]
        ours_state = backbone.model.state_dict()
        assert all(torch.equal(ours_state[k], v) for k, v in state.items() if k in ours_state)
        models = {m: anomalib_model(state, m) for m in (False, True)}
    reference = f"anomalib {anomalib.__version__} AnomalyDINOModel"
    rows = []
    for cat, (test, train) in data.items():
        images = [im for _, im in test]
        batches = {"shared": our_input(images, cfg, backbone)}
        refs_batches = {"shared": our_input(train, cfg, backbone)}
        if "own" in args.dino_inputs:
            batches["own"] = anomalib_input(images, edge)
            refs_batches["own"] = anomalib_input(train, edge)
        tokens = {}  # (antialias,) -> (test tokens, ref tokens, seconds per test image)
        for antialias, net in backbones.items():
            with torch.no_grad():
                start = time.perf_counter()
                t = our_tokens(net, batches["shared"])
                seconds = (time.perf_counter() - start) / len(images)
                tokens[antialias] = (t, our_tokens(net, refs_batches["shared"]), seconds)
        if "masking" in args.dino_settings:
            kept = np.mean([keep_foreground(t).mean() for t in tokens[False][0]])
            print(f"masking: {100 * kept:.0f} % of the test patches are foreground")
        for k in args.dino_shots:
            for key in args.dino_settings:
                label, mode, upsample, border, masking, antialias, store = SETTINGS[key]
                if mode not in args.dino_inputs:
                    continue
                a_s, a_m, a_t = run_anomalib(models[masking], refs_batches[mode][:k], batches[mode])
                test_tokens, ref_tokens, enc_t = tokens[antialias]
                method = our_method(upsample, border, masking, k)
                start = time.perf_counter()
                if store:
                    o_s, o_m = score_store(method, ref_tokens[:k], test_tokens, edge, cat)
                else:
                    o_s, o_m = score_fp32(method, ref_tokens[:k], test_tokens, edge, masking)
                o_t = enc_t + (time.perf_counter() - start) / len(images)
                r = row(
                    category=cat,
                    method="anomalydino",
                    reference=reference,
                    setting=f"{k}-shot, {label}",
                    ours=(o_s, o_m, o_t),
                    theirs=(a_s, a_m, a_t),
                    switches=(
                        f"rotation false, upsample {upsample}, blur_border {border}, masking "
                        f"{str(masking).lower()}, mask_references {str(masking).lower()}, "
                        f"tokens {'fp16 store' if store else 'fp32'}, pos-embed "
                        f"{'bicubic_antialias' if antialias else 'bicubic'}, input {mode}"
                    ),
                )
                print_row(r)
                rows.append(r)
    if args.write_fixture:
        write_fixture(args.weights_seed)
    return rows


# --------------------------------------------------------------------------- CI fixture

# our registry's dinov2_tiny: ViT-S/14's layout (no registers) with 2 blocks of width 32 at 224
TINY_MODEL = "dinov2_tiny"
TINY = {"embed_dim": 32, "num_heads": 2, "depth": 2, "img_size": 224}
# 64 px demo images brought to a 112 px smaller edge: the 16x16 position grid goes to 8x8, where
# antialiasing would matter
FIXTURE = {"category": "brick", "size": 64, "n_refs": 1, "n_test": 2, "edge": 112, "map_step": 2}
# fixture setting -> masking, with anomalib's map switches (nearest, mirror). No masked setting:
# on the tiny random ViT the PCA mask keeps no patch (anomalib's memory would be empty); the
# ViT-S rows above cover masking.
FIXTURE_SETTINGS = {"anomalib map": False}


@contextlib.contextmanager
def tiny_anomalib():
    """anomalib's AnomalyDINO on the ``dinov2_tiny`` layout: its ``timm.create_model`` call gets
    the sizes, its last-block index (read from the name) is 1."""
    import timm
    from anomalib.models.image.anomaly_dino import torch_model

    create, last = timm.create_model, torch_model.AnomalyDINOModel.__dict__["_last_block_index"]
    timm.create_model = lambda name, *a, **kw: create(name, *a, **{**kw, **TINY})
    torch_model.AnomalyDINOModel._last_block_index = staticmethod(lambda name: TINY["depth"] - 1)
    try:
        yield
    finally:
        timm.create_model = create
        torch_model.AnomalyDINOModel._last_block_index = last


def fixture_config(seed: int, interpolation: str | None = None):
    """The fixture's backbone entry: ``dinov2_tiny`` with random weights from ``seed``."""
    cfg = our_config(Path("random"), FIXTURE["edge"], interpolation, model=TINY_MODEL)
    return replace(cfg, seed=seed)


def fixture_outputs(backbone, cfg, refs, test, masking: bool):
    """Our scores and maps for a fixture setting (fp32 tokens, anomalib's map switches)."""
    with torch.no_grad():
        test_tokens = our_tokens(backbone, our_input(test, cfg, backbone))
        ref_tokens = our_tokens(backbone, our_input(refs, cfg, backbone))
    method = our_method("nearest", "mirror", masking, len(refs))
    return score_fp32(method, ref_tokens, test_tokens, cfg.smaller_edge, masking)


def write_fixture(seed: int) -> None:
    """``tests/fixtures/reference/anomalydino.{npz,json}``: anomalib's scores and maps (every
    ``map_step``-th pixel) on two demo images with one reference, on the tiny random ViT that
    ``fixture_config(seed)`` rebuilds (asserted equal to the weights anomalib gets here)."""

    import anomalib
    import timm

    from .lite0 import fixture_images

    f = FIXTURE
    test, refs = fixture_images(f["category"], f["n_refs"], f["n_test"], f["size"])
    torch.manual_seed(seed)
    state = timm.create_model(ARCH, pretrained=False, **TINY).state_dict()
    cfg = fixture_config(seed)
    backbone = cfg.load_backbone(torch.device("cpu"))
    ours_state = backbone.model.state_dict()
    assert all(torch.equal(ours_state[k], v) for k, v in state.items() if k in ours_state)
    arrays = {"test": np.stack(test), "refs": np.stack(refs)}
    step = f["map_step"]
    for name, masking in FIXTURE_SETTINGS.items():
        with tiny_anomalib():
            model = anomalib_model(state, masking)
        a_s, a_m, _ = run_anomalib(
            model, our_input(refs, cfg, backbone), our_input(test, cfg, backbone)
        )
        o_s, o_m = fixture_outputs(backbone, cfg, refs, test, masking)
        key = name.replace(", ", "_").replace(" ", "_")
        arrays[f"{key}_scores"] = a_s.astype(np.float32)
        arrays[f"{key}_maps"] = a_m[:, ::step, ::step].astype(np.float32)
        print(
            f"fixture anomalydino {name}: max|dscore| {np.abs(o_s - a_s).max():.3g} "
            f"max|dmap| {np.abs(o_m - a_m).max():.3g}"
        )
    meta = {
        "reference": f"anomalib {anomalib.__version__} (PyPI) AnomalyDINOModel",
        "arch": f"timm {ARCH} with {TINY} (our registry's {TINY_MODEL})",
        "weights": f"random: torch.manual_seed({seed}) then timm.create_model (= our backbone "
        f"{TINY_MODEL}, weights random, seed {seed})",
        "seed": seed,
        "images": f"embedded demo {f['category']} at {f['size']} px: {f['n_refs']} train image "
        f"as the reference, {f['n_test']} test (1 good, 1 defective), stored in the npz",
        "input": f"ours for both: PIL bicubic smaller edge {f['edge']} + ImageNet mean/std",
        "map_step": step,
        "settings": {
            name: {
                "upsample": "nearest",
                "blur_border": "mirror",
                "rotation": False,
                "masking": masking,
                "mask_references": masking,
                "interpolation": "bicubic (default)",
            }
            for name, masking in FIXTURE_SETTINGS.items()
        },
        "command": ".venv-compare/bin/python benchmarks/compare_reference.py --methods "
        "anomalydino --dino-shots 1 --dino-settings anomalib --dino-inputs shared "
        "--n-test 2 --n-train 1 --write-fixture",
    }
    save_fixture("anomalydino", arrays, meta)
