"""On-disk feature store: an fp16 NPY of shape (N, H, W, C) plus a Parquet index.

The NPY memory-maps, so every method reads the same bytes without copying them. The Parquet
index holds one row per image (same order as the NPY) and, in its schema metadata, the exact
extraction config and weights identity. :func:`load_features` refuses a cache whose config hash
differs from the one the caller expects, so features from another backbone config are never
silently reused.

Besides the extraction identity (``model``, ``family``, ``library_name``, ``weights``, resolved
``layers``, ``patch_size``, ``dim``, geometry), the metadata records ``grid`` and ``channels`` of
the stored array, ``layer_dims`` (the channel width of each tap's block, in tap order, summing to
``channels``) and ``model_input`` (the image size the model actually saw).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from iadbench.errors import CacheError
from iadbench.io import atomic_path

META_KEY = b"iadbench"


def config_hash(cfg: dict) -> str:
    """Stable short hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class FeatureSet:
    """Features of one (dataset, backbone, category, split), memory-mapped."""

    features: np.ndarray  # (N, H, W, C) float16, memmap
    index: pd.DataFrame
    meta: dict


def write_features(
    npy_path: Path, index_path: Path, index: pd.DataFrame, meta: dict, features: np.ndarray
) -> None:
    """Write the NPY and the index atomically; the index carries ``meta`` in its schema."""
    with atomic_path(npy_path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, features)
    write_index(index_path, index, meta)


def write_index(index_path: Path, index: pd.DataFrame, meta: dict) -> None:
    """Parquet index with the extraction metadata stored under the ``iadbench`` schema key."""
    table = pa.Table.from_pandas(index.reset_index(drop=True), preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = json.dumps(meta, sort_keys=True).encode()
    table = table.replace_schema_metadata(schema_meta)
    with atomic_path(index_path) as tmp:
        pq.write_table(table, tmp)


def read_meta(index_path: Path) -> dict:
    """Extraction metadata of a cached feature set."""
    metadata = pq.read_schema(index_path).metadata or {}
    if META_KEY not in metadata:
        raise CacheError(f"{index_path}: not an iadbench feature index (no metadata)")
    return json.loads(metadata[META_KEY])


def open_cached(
    npy_path: Path, index_path: Path, expect_hash: str | None, what: str
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """A cached NPY (memory-mapped), its Parquet index and metadata; a store made with another
    config (``expect_hash``) or an unreadable array is refused, naming the file."""
    meta = read_meta(index_path)
    if expect_hash is not None and meta.get("config_hash") != expect_hash:
        raise CacheError(
            f"{index_path}: {what} were computed with config {meta.get('config_hash')}, "
            f"expected {expect_hash}; refusing to reuse them (delete the file to recompute)"
        )
    try:
        array = np.load(npy_path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise CacheError(f"{npy_path}: unreadable {what} file ({exc})") from exc
    return array, pd.read_parquet(index_path), meta


def load_features(
    npy_path: str | Path,
    index_path: str | Path,
    expect_hash: str | None = None,
    check_finite: bool = True,
) -> FeatureSet:
    """Open a cached feature set, verifying its config hash, shape and values."""
    npy_path, index_path = Path(npy_path), Path(index_path)
    features, index, meta = open_cached(npy_path, index_path, expect_hash, "features")
    if features.ndim != 4 or features.shape[0] != len(index):
        raise CacheError(
            f"{npy_path}: shape {features.shape} does not match {len(index)} index rows"
        )
    finite_rows = (
        np.isfinite(features).reshape(len(index), -1).all(axis=1) if check_finite else None
    )
    if finite_rows is not None and not finite_rows.all():
        bad = int(np.argmax(~finite_rows))
        raise CacheError(
            f"{npy_path}: contains NaN/Inf (first bad row {bad}: {index.iloc[bad]['sample_id']})"
        )
    return FeatureSet(features=features, index=index, meta=meta)
