"""Reference parity: each method of ours beside its reference implementation at equal weights.

Printed and written to ``benchmarks/results/reference_parity[_tag]_<date>.{csv,md}``, never
asserted (the CI guard is the regression fixtures under ``tests/fixtures/reference/``). Runs in
the compare venv (anomalib + iadbench editable), CPU, offline:

    .venv-compare/bin/python benchmarks/compare_reference.py --methods winclip
    .venv-compare/bin/python benchmarks/compare_reference.py --root /path/to/mvtec_ad \\
        --categories bottle --n-test 8

One module per method in ``benchmarks/reference/`` (what each matches and which of our switches
it sets is in its docstring and in docs/reference-parity.md). References that exist only as the
authors' code are imported from a checkout the user names (``--crane-repo PATH``, ...).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference.common import RESULTS, commit, demo_images, folder_images, write_results  # noqa: E402

# method -> its module under benchmarks/reference/
METHODS = {
    "winclip": "reference.winclip",
    "m3dm": "reference.m3dm",
    "crane": "reference.crane",
    "bayes_pfl": "reference.bayes_pfl",
    "april_gan": "reference.april_gan",
    "patchcore": "reference.patchcore",
    "padim": "reference.padim",
    "anomalydino": "reference.anomalydino",
    "dinomaly": "reference.dinomaly",
    "late_fusion": "reference.late_fusion",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=["winclip"], choices=sorted(METHODS))
    ap.add_argument("--root", type=Path, help="MVTec-layout folder (default: the embedded demo)")
    ap.add_argument("--categories", nargs="+", default=["brick"])
    ap.add_argument("--n-test", type=int, default=6)
    ap.add_argument("--n-train", type=int, default=4, help="references are the first k of these")
    ap.add_argument("--image-size", type=int, default=128, help="demo image size")
    ap.add_argument("--weights-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="")
    ap.add_argument(
        "--write-fixture",
        action="store_true",
        help="also write each method's CI fixture (tests/fixtures/reference/<method>.npz + .json)",
    )
    modules = {name: importlib.import_module(target) for name, target in METHODS.items()}
    for module in modules.values():
        module.add_arguments(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = (
        folder_images(args.root, args.categories, args.n_test, args.n_train)
        if args.root
        else demo_images(args.categories, args.n_test, args.n_train, args.image_size)
    )
    rows = []
    for name in args.methods:
        rows += modules[name].run(args, data)
    header = [
        "# Reference parity: " + ", ".join(args.methods),
        "",
        f"Commit {commit()}, torch {torch.__version__}, CPU, {args.threads} threads. Images: "
        + (str(args.root) if args.root else f"the embedded demo ({args.image_size} px)")
        + "".join(
            f"; {name}: {modules[name].DATA}"
            for name in args.methods
            if getattr(modules[name], "DATA", None)
        )
        + f". Weights seed {args.weights_seed}.",
        "",
        f"Command: `.venv-compare/bin/python benchmarks/compare_reference.py "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}`",
    ]
    stem = write_results(rows, args.out, args.tag, header)
    print(f"wrote {stem}.csv and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
