"""Per-modality embeddings of multimodal samples: ragged token sequences in one fp16 NPY.

A run of a multimodal dataset has sequences of different lengths (video frames, audio frames)
and several views (photos), so the store keeps every sequence as a slice of one ``(n_tokens,
dim)`` array. The Parquet index has one row per (sample, view), in sample order:

===========  =====  ===================================================================
column       type   meaning
===========  =====  ===================================================================
sample_id    str    the manifest's sample id
label        int8   0 = normal, 1 = anomalous
defect_type  str    the manifest's defect type
split        str    the manifest's split
view         int    0 for single-view modalities; the photo's position for photos
offset       int    first token of the sequence in the NPY
length       int    number of tokens
grid_h       int    patch-grid height of an image view (tokens are row-major), else 0
grid_w       int    patch-grid width of an image view, else 0
===========  =====  ===================================================================

``meta``: ``encoder``, ``modality``, ``dim``, ``rate_hz`` (tokens per second of media for
video and audio, else None), ``layer_dims`` (channel width of each concatenated tap, images)
and ``config_hash`` (the encoder config's identity, checked on load).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.errors import CacheError
from iadbench.features.store import open_cached, write_index
from iadbench.io import save_npy

INDEX_COLUMNS = [
    "sample_id",
    "label",
    "defect_type",
    "split",
    "view",
    "offset",
    "length",
    "grid_h",
    "grid_w",
]


@dataclass
class EmbeddingSet:
    """Token sequences of one (dataset, encoder, category, split); see the module docstring."""

    tokens: np.ndarray
    index: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def sequence(self, row: int) -> np.ndarray:
        """Tokens of index row ``row`` as float32, shape ``(length, dim)``."""
        offset, length = int(self.index["offset"].iat[row]), int(self.index["length"].iat[row])
        return np.asarray(self.tokens[offset : offset + length], dtype=np.float32)

    def sample_ids(self) -> list[str]:
        """Sample ids in store order, each once."""
        return list(dict.fromkeys(self.index["sample_id"]))

    def rows_of(self, sample_id: str) -> list[int]:
        """Index rows (views) of one sample."""
        return np.flatnonzero(self.index["sample_id"].to_numpy() == sample_id).tolist()


def _check_layout(tokens: np.ndarray, index: pd.DataFrame, meta: dict, where: Path) -> None:
    """The index must slice the token array exactly as the module docstring says."""
    if missing := [c for c in INDEX_COLUMNS if c not in index.columns]:
        raise CacheError(f"{where}: index lacks column(s) {missing}")
    if tokens.ndim != 2:
        raise CacheError(f"{where}: tokens have shape {tokens.shape}, expected (n_tokens, dim)")
    if meta.get("dim") is not None and tokens.shape[1] != meta["dim"]:
        raise CacheError(f"{where}: tokens have dim {tokens.shape[1]}, meta says {meta['dim']}")
    ends = index["offset"].to_numpy(np.int64) + index["length"].to_numpy(np.int64)
    if len(index) and (index["offset"].min() < 0 or ends.max() > tokens.shape[0]):
        raise CacheError(f"{where}: index rows reach past the {tokens.shape[0]} stored tokens")


def save_embeddings(
    npy_path: str | Path,
    parquet_path: str | Path,
    tokens: np.ndarray,
    index: pd.DataFrame,
    meta: dict,
) -> None:
    """Write tokens (as fp16) and the index atomically; ``meta`` rides in the Parquet schema."""
    tokens = np.ascontiguousarray(tokens, dtype=np.float16)
    index = index[INDEX_COLUMNS].reset_index(drop=True)
    _check_layout(tokens, index, meta, Path(npy_path))
    save_npy(npy_path, tokens)
    write_index(Path(parquet_path), index, meta)


def load_embeddings(
    npy_path: str | Path, parquet_path: str | Path, expected_hash: str | None = None
) -> EmbeddingSet:
    """Open a store memory-mapped, refusing one computed with another encoder config."""
    npy_path, parquet_path = Path(npy_path), Path(parquet_path)
    tokens, index, meta = open_cached(npy_path, parquet_path, expected_hash, "embeddings")
    _check_layout(tokens, index, meta, npy_path)
    return EmbeddingSet(tokens=tokens, index=index, meta=meta)
