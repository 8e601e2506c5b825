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

import numpy as np
import pandas as pd

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
