"""Classifier gate (METHODS §11): a timm image classifier, trained per category on two classes.

Normal images come from the category's ``train`` split. Anomalies are ``synthetic`` (copies of
those normal images with one recipe of :mod:`iadbench.data.synthetic` — CutPaste, Scar, Perlin,
NSA or a draw among them — made afresh every epoch from the loop's per-epoch seed; NSA's source
and Perlin's texture are other normal images, or ``texture_dir``'s images for Perlin) or
``labelled`` (the ``train_labelled`` split). A training set with one class is an error: a gate
that never saw an anomaly can only say "normal" (the earlier system's first bug).
Cross-entropy is weighted by inverse class frequency; AdamW with a cosine schedule by default;
the best epoch is chosen on ``val`` (AUROC, or NLL when val has one class) when the dataset has
one, else the last epoch is kept. The logits are then temperature-scaled on ``val``.

Scores are P(anomalous) = sigmoid((logit_1 - logit_0) / T), per image: the network is in eval
mode (batch norm uses its running statistics), so a score never depends on batch-mates. The
score table keeps the raw ``margin`` so the uncalibrated ECE can be reported beside the
calibrated one. There are no pixel maps.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.special import expit

from iadbench.backbones.loader import build_model
from iadbench.backbones.registry import spec_for
from iadbench.backbones.weights import resolve_weights
from iadbench.data.images import Geometry, load_image
from iadbench.data.synthetic import synthesize, texture_images
from iadbench.device import resolve_device
from iadbench.errors import DataError
from iadbench.io import save_json
from iadbench.methods.base import Method, MethodInputs, time_each
from iadbench.methods.classifier.params import ClassifierParams
from iadbench.metrics.calibration import apply_temperature, ece, fit_temperature
from iadbench.metrics.image import image_auroc
from iadbench.seeding import seeded
from iadbench.training import TrainConfig, load_weights, params_hash, train_model

log = logging.getLogger(__name__)
SCORE_BATCH = 16


class _Images(torch.utils.data.Dataset):
    """Decoded images at the evaluation geometry, normalised; synthetic anomalies on the fly."""

    def __init__(self, images: list[np.ndarray], labels: list[int], synthetic: list[str | None],
                 mean: tuple, std: tuple, pool: list[np.ndarray] | None = None,
                 textures: list[np.ndarray] | None = None) -> None:  # fmt: skip
        self.images, self.labels, self.synthetic = images, labels, synthetic
        self.pool, self.textures = pool, textures
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i]
        if self.synthetic[i] is not None:
            # The loop reseeds numpy per epoch: a fresh, reproducible anomaly every epoch.
            rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
            image, _ = synthesize(image, rng, self.synthetic[i], self.pool, self.textures)
        return to_tensor(image, self.mean, self.std), self.labels[i]


def to_tensor(image: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0)
    return (x - mean) / std


class Classifier(Method):
    """Two-class timm classifier; its calibrated probability is the gate-only baseline."""

    kind = "classifier"
    params_class = ClassifierParams
    params: ClassifierParams

    def _network(self):
        """The timm model with its published (or random/file) weights and a fresh 2-way head."""
        spec = spec_for(self.params.model)
        weights = resolve_weights(str(self.params.weights), spec)
        model, preprocessing = build_model(spec, weights, self.seed)
        seeded(self.seed, model.reset_classifier, 2)
        return model, preprocessing, weights.identity

    def _load(self, rows: pd.DataFrame, geometry: Geometry) -> list[np.ndarray]:
        return [geometry.image(load_image(p)) for p in rows["image_path"]]

    def _training_set(self, inputs: MethodInputs, geometry: Geometry):
        if self.params.anomalies == "labelled":
            split = "train_labelled"
            rows = inputs.split_rows(split)
            images, labels = self._load(rows, geometry), rows["label"].astype(int).tolist()
            synthetic = [None] * len(images)
        else:
            split = "train"
            rows = inputs.split_rows(split)
            normal = self._load(rows[rows["label"] == 0], geometry)
            copies = int(self.params.synthetic_per_image)
            images = normal + [im for im in normal for _ in range(copies)]
            labels = [0] * len(normal) + [1] * (len(images) - len(normal))
            synthetic = [None] * len(normal) + [self.params.synthetic] * (len(images) - len(normal))
        n_anomalous = int(sum(labels))
        n_normal = len(labels) - n_anomalous
        if n_normal == 0 or n_anomalous == 0:
            category = inputs.index["category"].iloc[0] if len(inputs.index) else "?"
            raise DataError(
                f"category {category!r}, split {split}",
                f"the classifier's training set has one class ({n_normal} normal, "
                f"{n_anomalous} anomalous); a gate needs both (anomalies: synthetic makes them "
                "from normal images)",
            )
        return images, labels, synthetic, split, n_normal, n_anomalous

    def _logits(self, model, images: list[np.ndarray], mean, std, device) -> np.ndarray:
        """Per-image logit margins (class 1 - class 0), in eval mode, batch by batch."""
        model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), SCORE_BATCH):
                batch = torch.stack(
                    [to_tensor(im, mean, std) for im in images[start : start + SCORE_BATCH]]
                )
                logits = model(batch.to(device)).float().cpu()
                out.append((logits[:, 1] - logits[:, 0]).numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros(0)

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        state_dir = Path(state_dir)
        device = resolve_device(self.device)
        geometry = Geometry.from_config(train.dataset)
        images, labels, synthetic, split, n_normal, n_anomalous = self._training_set(
            train, geometry
        )
        model, pp, identity = self._network()
        model = model.to(device)
        mean, std = torch.tensor(pp.mean).view(3, 1, 1), torch.tensor(pp.std).view(3, 1, 1)
        pool = textures = None
        if self.params.anomalies == "synthetic":  # NSA's sources, Perlin's textures
            pool = images[:n_normal]
            if self.params.texture_dir:
                textures = texture_images(self.params.texture_dir)
        data = _Images(images, labels, synthetic, pp.mean, pp.std, pool, textures)
        weight = None
        if self.params.class_weights:
            counts = torch.tensor([n_normal, n_anomalous], dtype=torch.float32)
            weight = (counts.sum() / (2 * counts)).to(device)

        def loss_fn(net, batch):
            x, y = batch
            return F.cross_entropy(net(x), y, weight=weight)

        val_rows = train.split_rows("val")
        val_images = self._load(val_rows, geometry)
        val_labels = val_rows["label"].to_numpy().astype(int)
        val_fn = None
        if len(val_images):

            def val_fn(net) -> float:
                margin = self._logits(net, val_images, mean, std, device)
                if 0 < val_labels.sum() < len(val_labels):
                    return image_auroc(val_labels, margin)
                p = np.clip(expit(margin), 1e-12, 1 - 1e-12)
                return float(np.mean(val_labels * np.log(p) + (1 - val_labels) * np.log(1 - p)))

        summary = train_model(
            model,
            data,
            loss_fn,
            TrainConfig.from_config(self.cfg),
            state_dir,
            None,
            device=device,
            params_hash=params_hash(self.cfg),
            val_fn=val_fn,
        )
        best = state_dir / ("best.pt" if summary["selection"] == "val" else "last.pt")
        load_weights(model, best, device)
        temperature, val_ece = 1.0, {}
        if len(val_images):
            margin = self._logits(model, val_images, mean, std, device)
            both = 0 < val_labels.sum() < len(val_labels)
            if self.params.calibrate and both:
                temperature = fit_temperature(margin, val_labels)
            elif self.params.calibrate:
                log.warning("classifier: val has one class; no temperature scaling (T = 1)")
            val_ece = {
                "val_ece_uncalibrated": ece(expit(margin), val_labels),
                "val_ece": ece(apply_temperature(margin, temperature), val_labels),
            }
        else:
            log.warning("classifier: no val split; last epoch kept and no calibration (T = 1)")
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "weights": identity,
            "checkpoint": best.name,
            "training_split": split,
            "n_train_normal": n_normal,
            "n_train_anomalous": n_anomalous,
            "n_val": len(val_images),
            "temperature": float(temperature),
            "selection": summary["selection"],
            "best_epoch": summary["best_epoch"],
            "epochs": summary["epochs"],
            "final_loss": summary["final_loss"],
            "mean": list(pp.mean),
            "std": list(pp.std),
            **val_ece,
        }
        save_json(state_dir / "state.json", state)
        log.info("classifier: %s, T = %.3f, %s", summary["selection"], temperature, val_ece)
        return state

    def load(self, state_dir: Path):
        """The trained network on the device, with its state (for scoring and latency)."""
        import json

        state = json.loads((Path(state_dir) / "state.json").read_text())
        device = resolve_device(self.device)
        model, _, _ = self._network()
        load_weights(model, Path(state_dir) / state["checkpoint"], device)
        return model.to(device).eval(), state, device

    def latency(
        self, state_dir: Path | None, rows: pd.DataFrame, dataset_cfg: dict, backbone_cfg: dict
    ) -> np.ndarray:
        """Seconds per image: decode, geometry, normalisation, network, temperature."""
        model, state, device = self.load(Path(state_dir))
        geometry = Geometry.from_config(dataset_cfg)
        mean = torch.tensor(state["mean"]).view(3, 1, 1)
        std = torch.tensor(state["std"]).view(3, 1, 1)

        def one(i: int) -> None:
            image = geometry.image(load_image(rows["image_path"].iloc[i]))
            margin = self._logits(model, [image], mean, std, device)
            apply_temperature(margin, float(state["temperature"]))

        return time_each(one, len(rows), device)

    def score(self, state_dir: Path | None, inputs: MethodInputs, out_size: tuple[int, int]):
        model, state, device = self.load(Path(state_dir))
        geometry = Geometry.from_config(inputs.dataset)
        mean = torch.tensor(state["mean"]).view(3, 1, 1)
        std = torch.tensor(state["std"]).view(3, 1, 1)
        margin = self._logits(model, self._load(inputs.index, geometry), mean, std, device)
        probability = apply_temperature(margin, float(state["temperature"]))
        return probability, None, {"margin": margin}
