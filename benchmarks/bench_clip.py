"""Images/s of the cached CLIP passes: the visual view (CLS + patch tokens) and WinCLIP's windows.

Printed, never asserted. Random weights (speed does not depend on their values), CPU by default:

    .venv/bin/python benchmarks/bench_clip.py                      # tiny and ViT-B-16-plus-240
    .venv/bin/python benchmarks/bench_clip.py --models clip_tiny --images 32 --device cuda
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from iadbench.clip.encoder import load_clip
from iadbench.methods.winclip.windows import window_indices


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return sorted(runs)[len(runs) // 2]


def bench(name: str, args) -> None:
    """Print one model's images/s for the visual and the window pass."""
    encoder = load_clip(name, "random", device=args.device)
    size = encoder.preprocessing.input_size
    batch = torch.randn(args.images, 3, *size, device=args.device)
    last = encoder.resolve_blocks([-1])
    visual = timed(lambda: encoder.encode_image(batch, last, "ln_post"), args.repeats)
    sets = [window_indices(encoder.grid, k) for k in (2, 3)]

    def windows():
        for index in sets:
            encoder.encode_windows(batch, index)

    window = timed(windows, args.repeats)
    print(
        f"{name}: {size[0]} px, grid {encoder.grid}, {sum(len(s) for s in sets)} windows/image | "
        f"visual pass {args.images / visual:.1f} images/s | "
        f"window pass {args.images / window:.2f} images/s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["clip_tiny", "clip_vit_b16_plus_240"])
    parser.add_argument("--images", type=int, default=8, help="batch of images per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    for name in args.models:
        bench(name, args)


if __name__ == "__main__":
    main()
