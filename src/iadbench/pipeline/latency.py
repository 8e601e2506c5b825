"""Latency: an opt-in step that times each method's whole inference path per image.

Kept out of ``metrics.csv`` (timings differ between runs and machines; metrics must not). Every
timed method sees the same images: the first ``images`` test images of a category by sample id,
one at a time (batch size 1), after a warm-up image, with the model loaded beforehand. A
cascade is not timed itself: its latency is the gate's for every image plus the heatmap
method's for the images it routed there, read from its test score table (less the backbone pass
when the gate reads the heatmap method's features: it is run once).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.io import save_parquet, save_text

log = logging.getLogger(__name__)
BATCH_SIZE = 1


def latency_rows(manifest: str | Path, category: str, images: int) -> pd.DataFrame:
    """The test images a category is timed on: the first ``images`` by sample id."""
    frame = pd.read_parquet(manifest)
    rows = frame[(frame["category"] == category) & (frame["split"] == "test")]
    return rows.sort_values("sample_id").head(int(images)).reset_index(drop=True)


def time_method(
    method_cfg: dict,
    backbone_cfg: dict | None,
    geometry: dict,
    manifest: str | Path,
    category: str,
    state_dir: str | Path | None,
    images: int,
    out: str | Path,
    device: str = "auto",
) -> pd.DataFrame:
    """Per-image milliseconds of one method on one category -> ``out`` (Parquet)."""
    from iadbench.device import resolve_device
    from iadbench.methods import build_method

    rows = latency_rows(manifest, category, images)
    method = build_method(method_cfg, device=device)
    seconds = method.latency(Path(state_dir) if state_dir else None, rows, geometry, backbone_cfg)
    parts = {}
    if isinstance(seconds, tuple):  # (total, {part_seconds: ...}), e.g. the feature gate's
        seconds, parts = seconds
    table = pd.DataFrame(
        {
            "sample_id": rows["sample_id"],
            "ms": 1000.0 * np.asarray(seconds),
            **{
                name.replace("_seconds", "_ms"): 1000.0 * np.asarray(value)
                for name, value in parts.items()
            },
            "device": resolve_device(device).type,
            "batch_size": BATCH_SIZE,
        }
    )
    log.info("%s: %.1f ms mean over %d images", category, table["ms"].mean(), len(table))
    save_parquet(out, table)
    return table


def _row(item: dict, ms: pd.Series, device: str) -> dict:
    return {
        "dataset": item["dataset"],
        "method": item["method"],
        "category": item["category"],
        "kind": item["kind"],
        "n_images": int(len(ms)),
        "mean_ms": float(ms.mean()),
        "p95_ms": float(np.percentile(ms, 95)),
        "device": device,
        "batch_size": BATCH_SIZE,
    }


def summarise_latency(items: list[dict], out: str | Path) -> pd.DataFrame:
    """``results/summary/latency.csv``: one row per timed (method, dataset, category).

    ``items`` carry ``timings`` (a method's per-image table) or, for a cascade, ``gate`` and
    ``heatmap`` timing tables plus its test ``scores`` (with the ``route`` column), and
    ``shared_backbone`` when the gate reads the heatmap method's cached features: a routed image
    then costs the gate plus the heatmap method minus the gate's ``backbone_ms`` (the shared
    decode and backbone pass, timed on the gate's path).
    """
    rows = []
    for item in items:
        if "timings" in item:
            table = pd.read_parquet(item["timings"])
            rows.append(_row(item, table["ms"], str(table["device"].iloc[0])))
            continue
        gate = pd.read_parquet(item["gate"]).set_index("sample_id")
        heatmap = pd.read_parquet(item["heatmap"]).set_index("sample_id")
        routes = pd.read_parquet(item["scores"]).set_index("sample_id")["route"]
        ids = gate.index.intersection(heatmap.index)
        extra = heatmap.loc[ids, "ms"]
        if item.get("shared_backbone") and "backbone_ms" in gate.columns:
            # The gate read the heatmap method's features: that pass is not paid twice.
            extra = (extra - gate.loc[ids, "backbone_ms"]).clip(lower=0.0)
        ms = gate.loc[ids, "ms"] + extra * (routes.loc[ids] == "heatmap")
        rows.append(_row(item, ms, str(gate["device"].iloc[0])))
    table = pd.DataFrame(rows)
    save_text(out, table.to_csv(index=False, float_format="%.3f"))
    return table
