"""PatchCore quality knobs, one at a time, at anomalib's geometry: which defaults to ship.

Printed, never asserted. Same weights (EfficientNet-Lite0 ImageNet, strides 8/16), 256 px without
crop unless ``--crop``, coreset 10 %, reweighting k = 9, exact torch kNN. Each variant changes one
knob of a baseline; features are extracted once per (padding, normalize) pair and banks
fitted once per fusion, so a variant costs only what it changes.

    .venv/bin/python benchmarks/parity_patchcore.py                       # demo + demo-256
    .venv/bin/python benchmarks/parity_patchcore.py --datasets bottle \\
        --root /work/shared/data/mvtec_ad                                 # MVTec AD bottle

Datasets: ``demo`` (the embedded demo at its default sizes), ``demo-256`` (a second draw of the
generator: seed 1, 256 px images, 60 training and 39 test images per category), ``bottle`` (an
MVTec-layout root given with ``--root``). Writes ``benchmarks/results/parity_<datasets>_<date>.csv``
and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# knob -> value; "baseline" is zero padding, the weights' own mean/std, concat fusion, bilinear
# upsampling and the smoothed map's max; every other row changes one knob (the shipped default
# since this study is the baseline with fusion decay = weighted [1, 0.5] on two taps).
BASE = {
    "padding": "zeros",
    "normalize": "model",
    "fusion": "concat",
    "upsample": "bilinear",
    "image_score": "map_max",
    "reweight_neighbors": 9,
}
WEIGHTED = {"mode": "weighted", "weights": [1.0, 0.5]}
VARIANTS = {
    "baseline": {},
    "padding=exclude": {"padding": "exclude"},
    "normalize=imagenet": {"normalize": "imagenet"},
    "fusion=weighted[1,0.5]": {"fusion": WEIGHTED},
    "upsample=nearest": {"upsample": "nearest"},
    "image_score=patch_max": {"image_score": "patch_max"},
    "reweight_neighbors=0": {"reweight_neighbors": 0},
    "anomalib-like": {"upsample": "nearest", "image_score": "patch_max"},
    "weighted+imagenet": {"fusion": WEIGHTED, "normalize": "imagenet"},
}


def dataset_roots(names: list[str], root: str | None, work: Path) -> dict[str, tuple[Path, list]]:
    """name -> (MVTec-layout root, categories or 'all')."""
    from iadbench.data.demo import DEMO_CATEGORIES, generate_demo

    out: dict[str, tuple[Path, list | str]] = {}
    for name in names:
        if name == "demo":
            generate_demo(work / name, categories=DEMO_CATEGORIES)
            out[name] = (work / name, list(DEMO_CATEGORIES))
        elif name == "demo-256":
            generate_demo(
                work / name,
                categories=DEMO_CATEGORIES,
                seed=1,
                image_size=256,
                n_train=60,
                n_test_good=15,
                n_per_defect=6,
            )
            out[name] = (work / name, list(DEMO_CATEGORIES))
        else:
            if root is None:
                raise SystemExit(f"dataset {name!r} needs --root (an MVTec-layout folder)")
            out[name] = (Path(root), [name])
    return out


def run_category(manifest_path, category, dataset, work: Path, args) -> list[dict]:
    import numpy as np
    import pandas as pd

    from iadbench.data.images import Geometry
    from iadbench.metrics import evaluate_category
    from iadbench.pipeline import fit_method, make_features, score_method
    from iadbench.pipeline.evaluation import ground_truth

    manifest = pd.read_parquet(manifest_path)
    rows = []
    for name, change in VARIANTS.items():
        knobs = {**BASE, **change}
        feat_key = f"{knobs['padding']}_{knobs['normalize']}"
        fit_key = f"{feat_key}_{'w' if isinstance(knobs['fusion'], dict) else 'c'}"
        backbone = {
            "model": "efficientnet_lite0",
            "weights": "pretrained",
            "layers": [2, 3],
            "patch_size": 3,
            "padding": knobs["padding"],
            "normalize": knobs["normalize"],
        }
        method = {
            "kind": "patchcore",
            "coreset": 0.1,
            "reweight_neighbors": knobs["reweight_neighbors"],
            "knn_backend": "torch",
            "seed": 0,
            "fusion": knobs["fusion"],
            "upsample": knobs["upsample"],
            "image_score": knobs["image_score"],
        }
        files = {"manifest": str(manifest_path)}
        for split in ("train", "test"):
            npy = work / "features" / feat_key / f"{category}_{split}.npy"
            index = npy.with_suffix(".parquet")
            if not npy.exists():
                make_features(
                    str(manifest_path), category, split, backbone, dataset, str(npy), str(index),
                    device="cpu",
                )  # fmt: skip
            files[f"{split}_npy"], files[f"{split}_index"] = str(npy), str(index)
        state = work / "state" / category / fit_key
        if not (state / "state.json").exists():
            train = {"manifest": files["manifest"], "npy": files["train_npy"]}
            train["index"] = files["train_index"]
            fit_method(method, backbone, dataset, train, category, state, device="cpu")
        out = work / "scores" / category / name
        out.mkdir(parents=True, exist_ok=True)
        test = {
            "manifest": files["manifest"],
            "npy": files["test_npy"],
            "index": files["test_index"],
            "state": str(state),
        }
        scores, maps = out / "scores.parquet", out / "maps.npy"
        score_method(
            method, backbone, dataset, test, category, "test", str(scores), str(maps),
            device="cpu",
        )  # fmt: skip
        table = pd.read_parquet(scores)
        geometry = Geometry(dataset["resize"], dataset["crop"])
        masks, known = ground_truth(table, manifest, geometry)
        metric = evaluate_category(
            table["label"].to_numpy(), table["score"].to_numpy(), masks, np.load(maps), 0.3, known
        )
        rows.append(
            {
                "category": category,
                "variant": name,
                **{k: metric[k] for k in ("image_auroc", "pixel_auroc", "aupro")},
            }
        )
        print(
            f"  {category:10s} {name:24s} I-AUROC {metric['image_auroc']:.4f} "
            f"P-AUROC {metric['pixel_auroc']:.4f} AUPRO {metric['aupro']:.4f}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["demo", "demo-256"])
    parser.add_argument("--root", help="MVTec-layout root for datasets named by category")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--crop", type=int, help="centre crop after the resize (default: none)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=FutureWarning)
    import pandas as pd

    from iadbench.data.manifest import build_manifest
    from iadbench.io import save_parquet

    work = Path(tempfile.mkdtemp(prefix="parity-"))
    dataset = {"resize": args.size, "crop": args.crop or args.size}
    rows = []
    for name, (root, categories) in dataset_roots(args.datasets, args.root, work).items():
        print(f"{name}: {root} {categories} geometry {dataset}", flush=True)
        cfg = {"layout": "mvtec", "root": str(root), "categories": categories}
        manifest = build_manifest(name, cfg)
        manifest_path = work / f"{name}_manifest.parquet"
        save_parquet(manifest_path, manifest)
        for category in dict.fromkeys(manifest["category"]):
            for row in run_category(manifest_path, category, dataset, work / name, args):
                rows.append({"dataset": name, **row})

    table = pd.DataFrame(rows)
    means = table.groupby(["dataset", "variant"], sort=False)[
        ["image_auroc", "pixel_auroc", "aupro"]
    ].mean()
    means = means.reset_index().assign(category="mean")
    full = pd.concat([table, means], ignore_index=True)
    stamp = dt.datetime.now(dt.timezone.utc)
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty=+dirty"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    geometry = f"{args.size}" + (f"->{args.crop} crop" if args.crop else " no crop")
    stem = args.out / f"parity_{'_'.join(args.datasets)}_{stamp:%Y-%m-%d}"
    args.out.mkdir(parents=True, exist_ok=True)
    full.to_csv(stem.with_suffix(".csv"), index=False)
    pivot = means.pivot(index="variant", columns="dataset", values=["image_auroc", "aupro"])
    pivot = pivot.reindex(list(VARIANTS))
    header = (
        f"{stamp:%Y-%m-%d %H:%M} UTC, commit {commit}, geometry {geometry}; "
        f"macro means over categories (per-category rows in the CSV)\n\n"
    )
    stem.with_suffix(".md").write_text(header + pivot.round(4).to_markdown() + "\n")
    print(header + pivot.round(4).to_markdown())


if __name__ == "__main__":
    main()
