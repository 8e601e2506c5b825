"""Causal-FiLM (METHODS §6.3): predict the weld result from the weld process; score the miss.

fit: TRAIN normal runs' cached video, audio, sensor and photo embeddings -> :class:`CausalFilmNet`
trained with AdamW, warm-up + cosine, optional EMA and gradient clipping (the shared loop), the
checkpoint of the epoch with the best VAL I-AUROC kept (``best.pt``; EMA weights when EMA is on).
Sensor channels are z-scored with the TRAIN statistics (``sensor_norm: train``, saved in
``state.json``) or per run (``sample``). score: ``(1 − cos) + w · mean(top-k |Z − Ẑ|)``.
With ``text_anchor``, the prompt is encoded once per fit by the ``backbone:`` CLIP's text tower
and the loss gains ``weight · (1 − cos(W·Ẑ, t))``; ``W`` is saved with the network, unused by the
score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from iadbench.clip.outputs import load_encoder
from iadbench.data.media import fit_sensor_stats, normalise_sensor
from iadbench.device import resolve_device
from iadbench.errors import ConfigError
from iadbench.features.embeddings import EmbeddingSet
from iadbench.features.fusion import layer_dims_of
from iadbench.io import save_json
from iadbench.methods.base import Method, MethodInputs, load_state
from iadbench.methods.causal_film.film import (
    CausalFilmNet,
    film_loss,
    film_score,
    text_anchor_distance,
)
from iadbench.methods.causal_film.params import CausalFilmParams
from iadbench.methods.multimodal.stores import (
    RunPositions,
    as_tensors,
    check_identities,
    fit_splits,
    identities,
    labels_of,
    pad,
    sequences,
    stores_of,
    view_tokens,
)
from iadbench.metrics.image import image_auroc
from iadbench.seeding import seeded
from iadbench.training import TrainConfig, load_weights, train_model

log = logging.getLogger(__name__)

ROLES = ("video", "audio", "sensor", "photo")
SCORE_BATCH = 32


class Runs:
    """One split's runs as float32 tensors, in ``sample_ids`` order; batches padded on demand."""

    def __init__(
        self, stores: dict[str, EmbeddingSet], sample_ids: Sequence[str], sensor: dict
    ) -> None:
        self.video = as_tensors(sequences(stores["video"], sample_ids, "video"))
        self.audio = as_tensors(sequences(stores["audio"], sample_ids, "audio"))
        raw = sequences(stores["sensor"], sample_ids, "sensor")
        self.sensor = as_tensors(normalise_sensor(a, sensor["mode"], sensor["stats"]) for a in raw)
        self.photo = as_tensors(view_tokens(stores["photo"], sample_ids, "photo"))
        if len({p.shape[1:] for p in self.photo}) > 1:
            raise ValueError("causal_film needs the same photo token grid in every run")

    def __len__(self) -> int:
        return len(self.video)

    def batch(self, idx: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        idx = [int(i) for i in idx]
        video, video_mask = pad([self.video[i] for i in idx])
        audio, audio_mask = pad([self.audio[i] for i in idx])
        sensor, _ = pad([self.sensor[i] for i in idx])
        photo, photo_mask = pad([self.photo[i] for i in idx])
        batch = {
            "video": video, "video_mask": video_mask,
            "audio": audio, "audio_mask": audio_mask,
            "sensor": sensor, "sensor_len": torch.tensor([len(self.sensor[i]) for i in idx]),
            "photo": photo, "photo_mask": photo_mask,
        }  # fmt: skip
        return {k: v.to(device) for k, v in batch.items()}


def text_anchor(backbone: dict | None, prompt: str, device: str) -> tuple[torch.Tensor, str]:
    """The prompt's unit CLIP text embedding ``(D,)`` and the CLIP's identity; the text tower is
    dropped afterwards, since the embedding is the same at every step."""
    if backbone is None:
        raise ConfigError("causal_film text_anchor needs backbone: (a CLIP entry of backbones:)")
    encoder = load_encoder(backbone, device)
    embedding = F.normalize(encoder.encode_text([prompt])[0].float(), dim=-1)
    identity = f"{encoder.name}:{encoder.weights.identity}"
    if encoder.weights.kind == "random":
        identity += f":seed={int(backbone.get('seed', 0))}"
    return embedding, identity


class CausalFilm(Method):
    kind = "causal_film"
    params_class = CausalFilmParams
    params: CausalFilmParams

    def _stores(self, cached: dict) -> dict[str, EmbeddingSet]:
        return stores_of(cached, ROLES, self.kind)

    def _net(
        self, dims: dict[str, int], layer_dims: list[int], text_dim: int | None = None
    ) -> CausalFilmNet:
        return seeded(self.seed, CausalFilmNet, dims, layer_dims, self.params, text_dim)

    def _scores(self, net: CausalFilmNet, runs: Runs, device: torch.device) -> np.ndarray:
        """Eval-mode scores of every run, in order."""
        weight, top_k = float(self.params.score_weight), float(self.params.score_top_k)
        out = []
        with torch.no_grad():
            for start in range(0, len(runs), SCORE_BATCH):
                idx = range(start, min(start + SCORE_BATCH, len(runs)))
                z, z_hat = net(runs.batch(idx, device))
                out.append(film_score(z.float(), z_hat.float(), weight, top_k).cpu())
        return torch.cat(out).double().numpy()

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        state_dir = Path(state_dir)
        train_ids, train_stores, val_rows, val_stores = fit_splits(train, ROLES, self.kind)
        raw = sequences(train_stores["sensor"], train_ids, "sensor")
        sensor = {"mode": self.params.sensor_norm, "stats": fit_sensor_stats(raw)}
        runs = Runs(train_stores, train_ids, sensor)
        val_runs = Runs(val_stores, val_rows["sample_id"].tolist(), sensor)
        val_labels = labels_of(val_rows)
        dims = {role: int(train_stores[role].tokens.shape[1]) for role in ROLES}
        layer_dims = layer_dims_of(train_stores["photo"].meta, dims["photo"])
        device = resolve_device(self.device)
        anchor, anchor_state = None, None
        if spec := self.params.text_anchor:
            anchor, clip = text_anchor(train.backbone, spec["prompt"], self.device)
            anchor = anchor.to(device)
            anchor_state = {**spec, "clip": clip, "dim": int(anchor.shape[0])}
        net = self._net(dims, layer_dims, None if anchor is None else len(anchor))
        weights = float(self.params.l1_weight), float(self.params.gram_weight)

        def loss(model: CausalFilmNet, idx: torch.Tensor) -> dict[str, torch.Tensor]:
            z, z_hat = model(runs.batch(idx.tolist(), device))
            parts = film_loss(z.float(), z_hat.float(), *weights)
            if anchor is None:
                return parts
            text = text_anchor_distance(model.to_text(z_hat).float(), anchor)
            return {**parts, "loss": parts["loss"] + float(spec["weight"]) * text, "text": text}

        summary = train_model(
            net,
            RunPositions(len(runs)),
            loss,
            self._train_config(),
            state_dir,
            None,
            device=device,
            params_hash=self.kind,
            val_fn=lambda model: image_auroc(val_labels, self._scores(model, val_runs, device)),
        )
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "embeddings": identities(train_stores),
            "dims": dims,
            "layer_dims": layer_dims,
            "sensor": sensor,
            "text_anchor": anchor_state,
            "n_train_runs": len(runs),
            "n_val_runs": len(val_runs),
            "selection": "val_image_auroc",
            "best_val_auroc": summary["best_score"],
            **{k: summary[k] for k in ("epochs", "steps", "final_loss", "best_epoch")},
        }
        save_json(state_dir / "state.json", state)
        log.info(
            "causal_film: best VAL I-AUROC %.4f at epoch %s",
            summary["best_score"],
            summary["best_epoch"],
        )
        return state

    def _train_config(self) -> TrainConfig:
        p = self.params
        return TrainConfig(
            epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
            weight_decay=p.weight_decay, optimizer="adamw", schedule="cosine",
            seed=self.seed, amp=p.amp, warmup_epochs=p.warmup_epochs, ema=p.ema,
            grad_clip=p.grad_clip,
        )  # fmt: skip

    def scorer(self, state_dir: Path):
        """Load the selected checkpoint once; the returned function scores a split."""
        state_dir = Path(state_dir)
        state = load_state(state_dir)
        device = resolve_device(self.device)
        text_dim = (state.get("text_anchor") or {}).get("dim")
        net = self._net(state["dims"], state["layer_dims"], text_dim)
        load_weights(net, state_dir / "best.pt", device).eval()

        def score(inputs: MethodInputs, out_size: tuple[int, int]):
            stores = self._stores(inputs.cached)
            check_identities(state, stores, str(state_dir))
            runs = Runs(stores, inputs.index["sample_id"].tolist(), state["sensor"])
            return self._scores(net, runs, device), None, {}

        return score

    def score(self, state_dir: Path, inputs: MethodInputs, out_size: tuple[int, int]):
        return self.scorer(state_dir)(inputs, out_size)
