"""One short accelerator benchmark: extraction images/s, the greedy coreset and kNN queries/s.

Printed, never asserted. Needs only torch and numpy (plus timm for the extraction part), so it
runs on a machine without snakemake, faiss or open_clip, from a checkout:

    PYTHONPATH=src python benchmarks/bench_gpu.py                 # CUDA when present
    PYTHONPATH=src python benchmarks/bench_gpu.py --device cpu --scale 0.05   # a quick check

Sizes follow MVTec AD bottle at 256 px with EfficientNet-Lite0 (strides 8 and 16): 209 training
images -> 214k patches of 152 dims, a 10 % coreset; 83 test images of 1,024 patches searched
against that bank. Also a 157k x 1536 random bank (WideResNet-50's fused width). ``--scale``
shrinks every count. Random-initialised weights: timing, not quality.
"""

from __future__ import annotations

import argparse
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    device = torch.device(args.device)
    s = args.scale
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, scale {s}")
    extraction(device, images=max(8, int(209 * s)), batch=32, size=256)
    coreset(device, n=max(100, int(214_016 * s)), dim=152)
    coreset(device, n=max(100, int(157_000 * s)), dim=1536)
    bank_n, queries_n = max(100, int(21_401 * s)), max(1024, int(83 * 1024 * s))
    knn(device, bank_n, queries_n, 152)


if __name__ == "__main__":
    main()
