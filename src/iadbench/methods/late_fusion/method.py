"""Late fusion of audio and video autoencoders (METHODS §6.3; Stemmer et al., arXiv 2409.02290).

fit: each autoencoder trains on the TRAIN normal runs (audio: whole runs, video: pooled frames)
with Adam and MSE; the epoch with the lowest reconstruction error of VAL's normal runs is kept
(the only early stopping allowed: it reads VAL, never TEST). Audio batches are cropped to their
shortest run at random offsets, so no padding enters BatchNorm. The TRAIN runs' scores give each
modality's z-score mean and std; ``w: val`` picks the audio weight on VAL's I-AUROC (grid 0..1,
step 0.01, the smallest best w on ties). The audio schedule stands in for the paper's one-cycle:
a linear warm-up over 30 % of the epochs, then cosine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from iadbench.device import resolve_device
from iadbench.errors import CacheError
from iadbench.features.embeddings import EmbeddingSet
from iadbench.io import save_json
from iadbench.methods.base import Method, MethodInputs, load_state
from iadbench.methods.late_fusion.autoencoders import (
    AudioAutoencoder,
    VideoAutoencoder,
    frame_errors,
    moving_max,
)
from iadbench.methods.late_fusion.params import LateFusionParams
from iadbench.methods.multimodal.stores import (
    RunPositions,
    as_tensors,
    check_identities,
    fit_splits,
    identities,
    labels_of,
    sequences,
    stores_of,
)
from iadbench.metrics.image import image_auroc
from iadbench.seeding import seeded
from iadbench.training import TrainConfig, load_weights, train_model

log = logging.getLogger(__name__)

ROLES = ("audio", "video")
ONE_CYCLE_WARMUP = 0.3
W_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
STD_FLOOR = 1e-12
VAL_FRAMES = 2**14  # frames per forward pass when validating the video autoencoder


def z_stats(train_scores: np.ndarray) -> dict[str, float]:
    """TRAIN runs' mean and (population) std of one modality's scores; the std is floored so a
    constant score cannot divide by zero (the reimplementation adds 1e-8 instead)."""
    return {"mean": float(train_scores.mean()), "std": max(float(train_scores.std()), STD_FLOOR)}


def z_score(scores: np.ndarray, stats: dict[str, float]) -> np.ndarray:
    """Standardise scores with the TRAIN statistics of :func:`z_stats`."""
    return (scores - stats["mean"]) / stats["std"]


def best_weight(labels: np.ndarray, audio: np.ndarray, video: np.ndarray) -> tuple[float, float]:
    """The audio weight of the grid with the highest I-AUROC of the fused score, and that AUROC."""
    aurocs = [image_auroc(labels, w * audio + (1.0 - w) * video) for w in W_GRID]
    best = int(np.nanargmax(aurocs))
    return float(W_GRID[best]), float(aurocs[best])


class LateFusion(Method):
    kind = "late_fusion"
    params_class = LateFusionParams
    params: LateFusionParams

    # --- the two autoencoders ------------------------------------------------------------

    def _audio_net(self, bins: int) -> AudioAutoencoder:
        p = self.params
        return seeded(
            self.seed,
            AudioAutoencoder,
            bins,
            p.audio_widths,
            p.audio_bottleneck,
            padding=p.audio_padding,
            slope=float(p.audio_leaky_slope),
        )

    def _video_net(self, dim: int) -> VideoAutoencoder:
        widths, dropout = self.params.video_widths, self.params.video_dropout
        return seeded(self.seed, VideoAutoencoder, dim, widths, dropout)

    def _audio_scores(self, net: AudioAutoencoder, runs: list[torch.Tensor], device) -> np.ndarray:
        """Mean per-frame error of each run, one run at a time (no padding in a score)."""
        out = []
        with torch.no_grad():
            for run in runs:
                x = run.T.unsqueeze(0).to(device)
                out.append(float(frame_errors(x, net(x), 1).mean()))
        return np.asarray(out, dtype=np.float64)

    def _video_scores(
        self, net: VideoAutoencoder, runs: list[torch.Tensor], window: int, device
    ) -> np.ndarray:
        """Max over time of the moving average of frame errors, per run."""
        out = []
        with torch.no_grad():
            for run in runs:
                x = run.to(device)
                out.append(moving_max(frame_errors(x, net(x), -1), window))
        return np.asarray(out, dtype=np.float64)

    def _check_lengths(self, runs: list[torch.Tensor], min_frames: int) -> None:
        if short := [i for i, r in enumerate(runs) if len(r) < min_frames]:
            raise CacheError(
                f"late_fusion: {len(short)} audio sequence(s) have fewer than the {min_frames} "
                "frames the audio autoencoder needs (fewer audio_widths, a finer hop or "
                "audio_padding: same)"
            )

    def _fit_audio(self, train, val_good, device, out_dir: Path) -> AudioAutoencoder:
        net = self._audio_net(int(train[0].shape[1]))
        self._check_lengths(train + val_good, net.min_frames)

        def loss(model, idx):
            # Crop the batch's runs to its shortest one at random offsets (the loop seeds torch
            # per epoch): no zero padding reaches BatchNorm's statistics or the error.
            runs = [train[i] for i in idx.tolist()]
            n = min(len(r) for r in runs)
            starts = [int(torch.randint(len(r) - n + 1, ())) for r in runs]
            x = torch.stack([r[s : s + n] for r, s in zip(runs, starts, strict=True)])
            x = x.transpose(1, 2).to(device)
            return frame_errors(x, model(x), 1).mean()

        epochs = int(self.params.audio_epochs)
        cfg = TrainConfig(
            epochs=epochs,
            batch_size=int(self.params.batch_size),
            lr=float(self.params.audio_lr),
            schedule="cosine",
            warmup_epochs=round(ONE_CYCLE_WARMUP * epochs),
            seed=self.seed,
        )

        def val(model) -> float:
            return -float(self._audio_scores(model, val_good, device).mean())

        self._train(net, RunPositions(len(train)), loss, cfg, out_dir, device, val)
        return net

    def _fit_video(self, train, val_good, device, out_dir: Path) -> VideoAutoencoder:
        net = self._video_net(int(train[0].shape[1]))
        frames = torch.utils.data.TensorDataset(torch.cat(train))
        val_frames = torch.cat(val_good)

        def loss(model, batch):
            (x,) = batch
            return frame_errors(x, model(x), -1).mean()

        cfg = TrainConfig(
            epochs=int(self.params.video_epochs),
            batch_size=int(self.params.video_batch_size),
            lr=float(self.params.video_lr),
            seed=self.seed,
        )

        def val(model) -> float:
            chunks = val_frames.split(VAL_FRAMES)
            errors = [frame_errors(x.to(device), model(x.to(device)), -1) for x in chunks]
            return -float(torch.cat(errors).mean())

        self._train(net, frames, loss, cfg, out_dir, device, val)
        return net

    def _train(self, net, data, loss, cfg, out_dir: Path, device, val) -> None:
        summary = train_model(
            net, data, loss, cfg, out_dir, None, device=device, params_hash=self.kind, val_fn=val
        )
        load_weights(net, out_dir / "best.pt", device).eval()
        log.info("late_fusion %s: best VAL epoch %s", out_dir.name, summary["best_epoch"])

    # --- fit and score -------------------------------------------------------------------

    def _window(self, store: EmbeddingSet) -> int:
        rate = store.meta.get("rate_hz")
        if not rate:
            raise CacheError("late_fusion needs the video embeddings' rate_hz (frames per second)")
        return max(1, round(float(self.params.window_s) * float(rate)))

    def _run_scores(self, nets, stores, sample_ids, device) -> dict[str, np.ndarray]:
        audio = as_tensors(sequences(stores["audio"], sample_ids, "audio"))
        video = as_tensors(sequences(stores["video"], sample_ids, "video"))
        self._check_lengths(audio, nets["audio"].min_frames)
        window = self._window(stores["video"])
        return {
            "audio": self._audio_scores(nets["audio"], audio, device),
            "video": self._video_scores(nets["video"], video, window, device),
        }

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        state_dir = Path(state_dir)
        train_ids, train_stores, val_rows, val_stores = fit_splits(train, ROLES, self.kind)
        val_ids = val_rows["sample_id"].tolist()
        good = val_rows.loc[labels_of(val_rows) == 0, "sample_id"].tolist()
        device = resolve_device(self.device)
        nets = {}
        for role, train_ae in (("audio", self._fit_audio), ("video", self._fit_video)):
            runs = as_tensors(sequences(train_stores[role], train_ids, role))
            val_good = as_tensors(sequences(val_stores[role], good, role))
            nets[role] = train_ae(runs, val_good, device, state_dir / role)
        train_scores = self._run_scores(nets, train_stores, train_ids, device)
        norm = {role: z_stats(s) for role, s in train_scores.items()}
        val_scores = self._run_scores(nets, val_stores, val_ids, device)
        z = {role: z_score(s, norm[role]) for role, s in val_scores.items()}
        labels = labels_of(val_rows)
        if self.params.w == "val":
            w, val_auroc = best_weight(labels, z["audio"], z["video"])
        else:
            w = float(self.params.w)
            val_auroc = image_auroc(labels, w * z["audio"] + (1 - w) * z["video"])
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "embeddings": identities(train_stores),
            "dims": {role: int(train_stores[role].tokens.shape[1]) for role in ROLES},
            "norm": norm,
            "w": w,
            "w_from": "val" if self.params.w == "val" else "config",
            "val_auroc": val_auroc,
            "val_auroc_audio": image_auroc(labels, z["audio"]),
            "val_auroc_video": image_auroc(labels, z["video"]),
            "n_train_runs": len(train_ids),
            "n_val_runs": len(val_ids),
        }
        save_json(state_dir / "state.json", state)
        log.info("late_fusion: w = %.2f (VAL I-AUROC %.4f)", w, val_auroc)
        return state

    def scorer(self, state_dir: Path):
        """Load both autoencoders once; the returned function scores a split."""
        state_dir = Path(state_dir)
        state = load_state(state_dir)
        device = resolve_device(self.device)
        nets = {
            "audio": self._audio_net(state["dims"]["audio"]),
            "video": self._video_net(state["dims"]["video"]),
        }
        for role, net in nets.items():
            load_weights(net, state_dir / role / "best.pt", device).eval()

        def score(inputs: MethodInputs, out_size: tuple[int, int]):
            stores = stores_of(inputs.cached, ROLES, self.kind)
            check_identities(state, stores, str(state_dir))
            raw = self._run_scores(nets, stores, inputs.index["sample_id"].tolist(), device)
            norm, w = state["norm"], float(state["w"])
            z = {r: z_score(s, norm[r]) for r, s in raw.items()}
            fused = w * z["audio"] + (1.0 - w) * z["video"]
            return fused, None, {f"component_{r}": z[r] for r in ROLES}

        return score

    def score(self, state_dir: Path, inputs: MethodInputs, out_size: tuple[int, int]):
        return self.scorer(state_dir)(inputs, out_size)
