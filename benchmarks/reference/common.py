"""What every reference comparison shares: images, weights files, statistics, result files."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
FIXTURES = REPO / "tests" / "fixtures" / "reference"
# Columns of every row, in the order of the CSV and the Markdown table.
COLUMNS = (
    "category",
    "method",
    "reference",
    "setting",
    "n_images",
    "max_abs_d_score",
    "spearman",
    "max_abs_d_map",
    "map_size",
    "reference_s_per_img",
    "iadbench_s_per_img",
    "switches",
)


def demo_images(categories, n_test: int, n_train: int, size: int):
    """{category: (test [(name, uint8 RGB)], train [uint8 RGB])} from the embedded demo."""
    from iadbench.data.demo import DEFECT_TYPES, make_defect_sample, make_normal_sample

    out = {}
    for cat in categories:
        test = [
            (f"good/{i:03d}", make_normal_sample(cat, "test", i, image_size=size))
            for i in range(n_test // 2)
        ]
        for i in range(n_test - len(test)):
            defect = DEFECT_TYPES[i % len(DEFECT_TYPES)]
            test.append(
                (f"{defect}/{i:03d}", make_defect_sample(cat, defect, i, image_size=size)[1])
            )
        train = [make_normal_sample(cat, "train", i, image_size=size) for i in range(n_train)]
        out[cat] = (test, train)
    return out


def folder_images(root: Path, categories, n_test: int, n_train: int):
    """The same from an MVTec-layout folder: the first test images of each defect type in turn."""
    from iadbench.data.images import load_image

    out = {}
    for cat in categories:
        groups = [sorted(d.glob("*.png")) for d in sorted((root / cat / "test").iterdir())]
        picks = []
        while len(picks) < n_test and any(groups):
            for g in groups:
                if g and len(picks) < n_test:
                    picks.append(g.pop(0))
        test = [(f"{p.parent.name}/{p.stem}", load_image(p)) for p in picks]
        train = [load_image(p) for p in sorted((root / cat / "train" / "good").glob("*.png"))]
        out[cat] = (test, train[:n_train])
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (no ties expected; NaN for fewer than 2 or constant)."""
    if len(a) < 2:
        return float("nan")
    ra, rb = (np.argsort(np.argsort(x)).astype(float) for x in (a, b))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def row(
    *,
    category: str,
    method: str,
    reference: str,
    setting: str,
    ours: tuple[np.ndarray, np.ndarray | None, float],
    theirs: tuple[np.ndarray, np.ndarray | None, float],
    switches: str,
) -> dict:
    """One parity row from ``(scores, maps or None, seconds per image)`` of each side.

    Maps must already be at the same resolution; a shape mismatch is an error, never resized
    silently here.
    """
    o_s, o_m, o_t = ours
    r_s, r_m, r_t = theirs
    o_s, r_s = np.asarray(o_s, np.float64).ravel(), np.asarray(r_s, np.float64).ravel()
    if o_s.shape != r_s.shape:
        raise ValueError(f"{method}: {o_s.shape[0]} scores ours vs {r_s.shape[0]} reference")
    d_map, size = float("nan"), "n/a"
    if o_m is not None and r_m is not None:
        o_m, r_m = np.asarray(o_m, np.float64), np.asarray(r_m, np.float64)
        if o_m.shape != r_m.shape:
            raise ValueError(f"{method}: maps {o_m.shape} ours vs {r_m.shape} reference")
        d_map, size = float(np.abs(o_m - r_m).max()), "x".join(map(str, o_m.shape[-2:]))
    return {
        "category": category,
        "method": method,
        "reference": reference,
        "setting": setting,
        "n_images": int(o_s.shape[0]),
        "max_abs_d_score": float(np.abs(o_s - r_s).max()),
        "spearman": spearman(o_s, r_s),
        "max_abs_d_map": d_map,
        "map_size": size,
        "reference_s_per_img": float(r_t),
        "iadbench_s_per_img": float(o_t),
        "switches": switches,
    }


def print_row(r: dict) -> None:
    print(
        f"{r['method']:12s} {r['category']:10s} {r['setting']:24s} "
        f"max|dscore| {r['max_abs_d_score']:.3g}  rho {r['spearman']:.4f}  "
        f"max|dmap| {r['max_abs_d_map']:.3g}  s/img ref {r['reference_s_per_img']:.3f} "
        f"ours {r['iadbench_s_per_img']:.3f}"
    )


@contextlib.contextmanager
def import_checkout(path: Path | None, option: str, probe: str) -> Iterator[Path]:
    """Put the authors' checkout at ``path`` first on ``sys.path`` while its code is imported.

    ``probe`` is a file the checkout must contain (e.g. ``"models/uad.py"``); the error names the
    option and the path so a wrong checkout is caught before any import.
    """
    if path is None:
        raise SystemExit(f"{option} PATH is required: a checkout of the reference code")
    path = Path(path).expanduser().resolve()
    if not (path / probe).is_file():
        raise SystemExit(f"{option} {path}: not a checkout of the reference ({probe} missing)")
    sys.path.insert(0, str(path))
    before = set(sys.modules)
    try:
        yield path
    finally:
        sys.path.remove(str(path))
        # their top-level module names (model, utils, ...) must not shadow the next checkout's
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            file = getattr(module, "__file__", None) or ""
            if file.startswith(str(path)):
                del sys.modules[name]


def import_from(path: Path, module: str):
    """``importlib.import_module`` inside :func:`import_checkout`'s context, with a clear error."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SystemExit(f"cannot import {module!r} from {path}: {exc}") from None


def commit() -> str:
    """``git rev-parse --short HEAD`` plus ``+dirty`` when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, text=True, capture_output=True
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(rows: list[dict], out: Path, tag: str, header: list[str]) -> Path:
    """``reference_parity[_tag]_<date>.{csv,md}``: every row, and a table under ``header``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"reference_parity{'_' + tag if tag else ''}_{dt.date.today().isoformat()}"
    with open(f"{stem}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    lines = [*header, "", markdown(rows)]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    return stem


def markdown(rows: list[dict]) -> str:
    """The parity table: one line per (method, category, setting)."""
    head = (
        "| method | reference | category | setting | images | max abs d score | Spearman "
        "| max abs d map | map | reference s/img | iadbench s/img | our switches |"
    )
    lines = [head, "|" + " --- |" * 12]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['reference']} | {r['category']} | {r['setting']} | "
            f"{r['n_images']} | {r['max_abs_d_score']:.2e} | {r['spearman']:.4f} | "
            f"{r['max_abs_d_map']:.2e} | {r['map_size']} | {r['reference_s_per_img']:.3f} | "
            f"{r['iadbench_s_per_img']:.3f} | {r['switches']} |"
        )
    return "\n".join(lines)


def load_fixture(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """A stored reference fixture: its JSON (how it was made) and its arrays."""
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    with np.load(FIXTURES / f"{name}.npz") as data:
        return meta, {k: data[k] for k in data.files}


def save_fixture(name: str, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``tests/fixtures/reference/<name>.{npz,json}``, each atomically, and say so."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    npz, tmp = FIXTURES / f"{name}.npz", FIXTURES / f".{name}.npz.tmp"
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, npz)
    tmp = FIXTURES / f".{name}.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, FIXTURES / f"{name}.json")
    print(f"wrote {npz} ({npz.stat().st_size / 1e3:.0f} KB) and {name}.json")
    return npz
