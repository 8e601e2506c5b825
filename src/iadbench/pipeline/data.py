"""Data steps: the generated demo dataset and the manifest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iadbench.data.manifest import build_manifest
from iadbench.data.union import union_manifest
from iadbench.io import save_parquet


def make_demo(root: str | Path, demo_cfg: dict, categories: list[str]) -> dict:
    """Generate a demo dataset; ``demo_cfg["layout"]`` (default mvtec) picks the generator.

    ``weld``: synthetic weld runs in the Intel layout (:mod:`iadbench.data.weld_demo`, its one
    category is implied); any other layout: the MVTec-tree texture demo
    (:mod:`iadbench.data.demo`).
    """
    options = dict(demo_cfg)
    if options.pop("layout", "mvtec") == "weld":
        from iadbench.data.weld_demo import generate_weld_demo

        return generate_weld_demo(root, **options)
    from iadbench.data.demo import generate_demo

    return generate_demo(root, categories=tuple(categories), **options)


def make_manifest(
    dataset: str, dataset_cfg: dict, out: str | Path, sources: dict[str, str] | None = None
) -> pd.DataFrame:
    """Build, validate and write ``results/{dataset}/manifest.parquet``.

    Masks that match no image are logged by the reader and kept in the Parquet file's metadata
    (``frame.attrs["orphan_masks"]``), so they stay listed beside the data they were found with.
    A ``union`` dataset is built from its ``sources``' manifests (name -> Parquet path).
    """
    if dataset_cfg.get("layout") == "union":
        frames = {name: pd.read_parquet(path) for name, path in (sources or {}).items()}
        frame = union_manifest(dataset, dataset_cfg, frames)
    else:
        frame = build_manifest(dataset, dataset_cfg)
    save_parquet(out, frame)
    return frame
