"""One short accelerator benchmark: extraction images/s, the greedy coreset and kNN queries/s,
and, where anomalib is installed, ours beside anomalib in seconds per image on the device.

Printed, never asserted. Needs only torch and numpy (plus timm for the extraction part), so it
runs on a machine without snakemake, faiss or open_clip, from a checkout:

    PYTHONPATH=src python benchmarks/bench_gpu.py                 # CUDA when present
    PYTHONPATH=src python benchmarks/bench_gpu.py --device cpu --scale 0.05   # a quick check
    # ours vs anomalib 2.7.0 (the compare venv), PatchCore and PaDiM on the device
    .venv-compare/bin/python benchmarks/bench_gpu.py --reference --device cpu --scale 0.05

``--reference`` runs the reference-parity comparisons of ``benchmarks/reference/`` (PatchCore
with our coreset handed to anomalib, PaDiM with our Gaussians; EfficientNet-Lite0 package
weights, one input tensor) on the device: seconds per image of the test pass on each side, the
fastest of 3 passes (the first warms the device up), with the largest score difference as a
check that both sides computed the same thing. Without anomalib it says so and skips.

Sizes follow MVTec AD bottle at 256 px with EfficientNet-Lite0 (strides 8 and 16): 209 training
images -> 214k patches of 152 dims, a 10 % coreset; 83 test images of 1,024 patches searched
against that bank. Also a 157k x 1536 random bank (WideResNet-50's fused width). ``--scale``
shrinks every count. Random-initialised weights: timing, not quality.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from iadbench.methods.coreset import approximate_greedy_coreset
from iadbench.methods.knn import KnnIndex


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run) -> float:
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - start


def extraction(device: torch.device, images: int, batch: int, size: int) -> None:
    try:
        from iadbench.backbones.loader import load_backbone
        from iadbench.features.extract import FeatureConfig, patch_features
    except ImportError as exc:  # timm missing on this machine
        print(f"extraction: skipped ({exc})")
        return
    cfg = FeatureConfig(model="efficientnet_lite0", weights="random", layers=[2, 3])
    backbone = load_backbone(cfg.model, "random", cfg.layers, seed=0, device=device)
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 255, (size, size, 3), np.uint8) for _ in range(batch)]
    patch_features(backbone, pixels, cfg, device)  # warm-up (cuDNN autotune, allocator)
    batches = max(1, images // batch)
    seconds = timed(
        device, lambda: [patch_features(backbone, pixels, cfg, device) for _ in range(batches)]
    )
    print(
        f"extraction: {batches * batch} images of {size} px, batch {batch}: "
        f"{batches * batch / seconds:.1f} images/s (autocast on CUDA, pinned uint8 copies)"
    )


def coreset(device: torch.device, n: int, dim: int) -> None:
    feats = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
    keep = max(1, n // 10)
    seconds = timed(
        device,
        lambda: approximate_greedy_coreset(feats, keep, device=device, progress=False),
    )
    print(f"coreset: {n} x {dim} -> {keep}: {seconds:.2f} s")


def knn(device: torch.device, bank_n: int, queries_n: int, dim: int) -> None:
    gen = torch.Generator().manual_seed(1)
    bank = torch.randn(bank_n, dim, generator=gen)
    queries = torch.randn(queries_n, dim, generator=gen)
    index = KnnIndex(bank, backend="torch", device=device)
    index.search(queries[:1024], k=9)
    seconds = timed(device, lambda: index.search(queries, k=9))
    print(
        f"knn: {queries_n} queries x {bank_n} bank x {dim} (torch, k 9): "
        f"{queries_n / seconds:,.0f} queries/s"
    )


def reference(device: torch.device, n_train: int, n_test: int, size: int) -> None:
    """Ours beside anomalib on ``device``: seconds per test image, each side's test pass."""
    try:
        import anomalib
    except ImportError as exc:
        print(f"reference: skipped ({exc}; run it with the compare venv's python)")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reference import padim, patchcore
    from reference.lite0 import fixture_images

    test, train = fixture_images("brick", n_train, n_test, size)
    runs = {
        "patchcore (our coreset 10 %)": lambda: patchcore.compare(
            train, test, "our coreset", size, 0.1, 0, str(device), repeats=3
        ),
        "padim (our Gaussians)": lambda: padim.compare(
            train, test, "our Gaussians", size, 0, str(device), repeats=3
        ),
    }
    for label, run in runs.items():
        (o_s, _, o_t), (a_s, _, a_t) = run()
        print(
            f"reference {label}: {n_train} train / {n_test} test images of {size} px, "
            f"s/img anomalib {anomalib.__version__} {a_t:.4f}, iadbench {o_t:.4f} "
            f"(ours/anomalib {o_t / a_t:.2f}); max |d score| {abs(o_s - a_s).max():.2g}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--reference", action="store_true", help="also ours vs anomalib in s/img (see above)"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    s = args.scale
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, scale {s}")
    if args.reference:  # bottle's sizes at scale 1: 209 training and 83 test images of 256 px
        reference(device, max(2, int(209 * s)), max(2, int(83 * s)), 256)
    extraction(device, images=max(8, int(209 * s)), batch=32, size=256)
    coreset(device, n=max(100, int(214_016 * s)), dim=152)
    coreset(device, n=max(100, int(157_000 * s)), dim=1536)
    bank_n, queries_n = max(100, int(21_401 * s)), max(1024, int(83 * 1024 * s))
    knn(device, bank_n, queries_n, 152)


if __name__ == "__main__":
    main()
