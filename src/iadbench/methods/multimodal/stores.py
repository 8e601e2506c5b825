"""Reading embedding stores in a split's sample order, and batching their ragged sequences.

Every multimodal kind reads several stores (one per role) whose row order is the encoder's; the
scores must follow the manifest's ``sample_id`` order, so each store is realigned here and a
sample missing from any store is an error (a sample is never dropped or given a default score).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from iadbench.errors import CacheError
from iadbench.features.embeddings import EmbeddingSet
from iadbench.methods.base import MethodInputs


def stores_of(cached: dict, roles: Sequence[str], who: str) -> dict[str, EmbeddingSet]:
    """The ``{role: EmbeddingSet}`` of one split, checking every role is there."""
    stores = cached.get("embeddings") or {}
    missing = [role for role in roles if role not in stores]
    if missing:
        raise CacheError(f"{who} needs cached embeddings for {missing} (given: {sorted(stores)})")
    return {role: stores[role] for role in roles}


def split_stores(cached: dict, split: str, roles: Sequence[str], who: str) -> dict:
    """The ``{role: EmbeddingSet}`` of ``split`` from a fit's ``{split: {role: store}}``."""
    by_split = cached.get("embeddings") or {}
    if split not in by_split:
        raise CacheError(f"{who} needs the {split} embeddings (given: {sorted(by_split)})")
    return stores_of({"embeddings": by_split[split]}, roles, who)


def rows_by_sample(store: EmbeddingSet, sample_ids: Sequence[str], role: str) -> list[list[int]]:
    """Index rows (views, in view order) of each sample, in ``sample_ids`` order."""
    index = store.index
    groups = pd.Series(np.arange(len(index))).groupby(index["sample_id"].to_numpy())
    views = index["view"].to_numpy()
    by_id = {sid: rows.to_numpy()[np.argsort(views[rows.to_numpy()])] for sid, rows in groups}
    missing = [sid for sid in sample_ids if sid not in by_id]
    if missing:
        raise CacheError(
            f"the {role} embeddings ({store.meta.get('encoder')}) lack {len(missing)} sample(s), "
            f"e.g. {missing[:3]}"
        )
    return [by_id[sid].tolist() for sid in sample_ids]


def sequences(store: EmbeddingSet, sample_ids: Sequence[str], role: str) -> list[np.ndarray]:
    """One ``(length, dim)`` float32 sequence per sample of a single-view modality."""
    out = []
    for sid, rows in zip(sample_ids, rows_by_sample(store, sample_ids, role), strict=True):
        if len(rows) != 1:
            raise CacheError(f"the {role} embeddings hold {len(rows)} views of {sid!r}, not one")
        seq = store.sequence(rows[0])
        if len(seq) == 0:
            raise CacheError(f"the {role} embeddings of {sid!r} are empty")
        out.append(seq)
    return out


def view_tokens(store: EmbeddingSet, sample_ids: Sequence[str], role: str) -> list[np.ndarray]:
    """Per sample, its views' patch tokens as one ``(views, tokens, dim)`` array."""
    out = []
    for sid, rows in zip(sample_ids, rows_by_sample(store, sample_ids, role), strict=True):
        views = [store.sequence(r) for r in rows]
        if len({len(v) for v in views}) != 1 or len(views[0]) == 0:
            raise CacheError(f"the {role} views of {sid!r} differ in token count or are empty")
        out.append(np.stack(views))
    return out


def labels_of(index: pd.DataFrame) -> np.ndarray:
    """0/1 labels of manifest rows."""
    return index["label"].to_numpy().astype(np.int64)


def identities(stores: dict[str, EmbeddingSet]) -> dict[str, dict]:
    """What a fit records of each store, to refuse scoring with another encoder config."""
    keys = ("encoder", "modality", "dim", "rate_hz", "layer_dims", "config_hash")
    return {role: {k: s.meta.get(k) for k in keys} for role, s in stores.items()}


def check_identities(state: dict, stores: dict[str, EmbeddingSet], where: str) -> None:
    """Refuse stores from another encoder config than the fit's."""
    for role, store in stores.items():
        fitted = state["embeddings"][role]["config_hash"]
        if fitted != store.meta.get("config_hash"):
            raise CacheError(
                f"{where}: fitted on {role} embeddings {fitted} but given "
                f"{store.meta.get('config_hash')} (different encoder config)"
            )


def as_tensors(arrays) -> list[torch.Tensor]:
    """float32 arrays -> tensors sharing their memory."""
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def pad(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``(length, dim)`` tensors to ``(B, T, dim)``; mask ``(B, T)`` True = real token."""
    lengths = torch.tensor([len(s) for s in seqs])
    batch = torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True)
    mask = torch.arange(batch.shape[1])[None, :] < lengths[:, None]
    return batch, mask.to(batch.device)


def fit_splits(
    train: MethodInputs, roles: Sequence[str], who: str
) -> tuple[list[str], dict[str, EmbeddingSet], pd.DataFrame, dict[str, EmbeddingSet]]:
    """TRAIN sample ids and stores, VAL manifest rows and stores of a fit's ``MethodInputs``.

    TRAIN must hold normal runs only (a one-class fit never learns from a defect) and VAL both
    classes (model selection maximises VAL I-AUROC); TEST is never looked at.
    """
    if labels_of(train.index).any():
        raise ValueError(f"{who} fits on normal runs only, but TRAIN holds anomalous ones")
    val = train.split_rows("val")
    if val.empty or len(np.unique(labels_of(val))) < 2:
        raise ValueError(f"{who} selects on VAL, which must hold normal and anomalous runs")
    return (
        train.index["sample_id"].tolist(),
        split_stores(train.cached, "train", roles, who),
        val,
        split_stores(train.cached, "val", roles, who),
    )


class RunPositions(torch.utils.data.Dataset):
    """Run positions 0..n-1: the loop shuffles and batches them; the loss gathers the runs
    (of different lengths) itself, as default collation could not stack them."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i
