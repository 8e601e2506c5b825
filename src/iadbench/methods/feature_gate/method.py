"""Feature gate (issue 25): a small head on pooled cached features, trained per category.

Why: a CNN gate runs a second network before the heatmap method's backbone, and on real defects
its CutPaste-trained ranking was weak. This gate reads the feature store that the heatmap method
(same ``backbone``) already fills, so scoring it adds only a pooling and a dot product (or a
tiny MLP) per image; the backbone pass is shared with the heatmap method.

Training set: the pooled features of the normal ``train`` images (label 0) and of synthetic
anomalies made from them (label 1; :mod:`iadbench.features.synthetic`, cached once by the
feature stage). Pooling per image: mean and/or max over all patches, so a local defect moves the
max even when it barely moves the mean. The vectors are standardised with the training set's
mean and standard deviation. The head is a logistic regression with balanced class weights or a
2-layer ReLU MLP (scikit-learn, fixed seed) with the normal class repeated to balance it. Its
margin (the logit of P(anomalous)) is temperature-scaled on ``val`` as the CNN gate's is. The
head's weights go to ``head.npz`` and the forward pass at scoring time is written out here
(a matrix product, a ReLU), so scores need neither pickles nor scikit-learn's version.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from iadbench.errors import DataError
from iadbench.features.store import FeatureSet
from iadbench.io import atomic_path, save_json
from iadbench.methods.base import Method, MethodInputs, check_features, load_state
from iadbench.methods.feature_gate.params import FeatureGateParams
from iadbench.metrics.calibration import apply_temperature, ece, fit_temperature

log = logging.getLogger(__name__)
EPS = 1e-6


def pool(features: np.ndarray, pooling: str) -> np.ndarray:
    """(N, h, w, C) patch features -> (N, C) or (N, 2C) float64 per-image vectors."""
    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1, features.shape[-1])
    parts = []
    if pooling in ("mean_max", "mean"):
        parts.append(x.mean(axis=1))
    if pooling in ("mean_max", "max"):
        parts.append(x.max(axis=1))
    return np.concatenate(parts, axis=1).astype(np.float64)


def head_margin(head: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The head's logit of P(anomalous) for standardised vectors ``x`` (N, D)."""
    z = (x - head["mean"]) / head["scale"]
    if "w2" in head:  # 2-layer MLP: ReLU hidden layer, one logistic output
        z = np.maximum(z @ head["w1"] + head["b1"], 0.0)
        return (z @ head["w2"] + head["b2"]).ravel()
    return (z @ head["w1"] + head["b1"]).ravel()


class FeatureGate(Method):
    """Pooled cached features -> small head -> temperature-scaled P(anomalous)."""

    kind = "feature_gate"
    params_class = FeatureGateParams
    params: FeatureGateParams

    def _fit_head(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier

        mean, scale = x.mean(axis=0), x.std(axis=0) + EPS
        z = (x - mean) / scale
        c = float(self.params.c)
        if self.params.hidden is None:
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
            model.fit(z, y)
            return {"mean": mean, "scale": scale, "w1": model.coef_.T, "b1": model.intercept_}
        # Balance by repeating the smaller class (MLPClassifier has no class weights).
        normal, anomalous = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
        small, large = sorted((normal, anomalous), key=len)
        repeat = np.resize(small, len(large))
        order = np.r_[large, repeat]
        model = MLPClassifier(
            hidden_layer_sizes=(int(self.params.hidden),),
            alpha=1.0 / c,
            max_iter=2000,
            random_state=self.seed,
        )
        model.fit(z[order], y[order])
        (w1, w2), (b1, b2) = model.coefs_, model.intercepts_
        return {"mean": mean, "scale": scale, "w1": w1, "b1": b1, "w2": w2, "b2": b2}

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        state_dir = Path(state_dir)
        normal = train.require_features("feature_gate")
        extra = train.cached.get("features", {})
        category = normal.meta.get("category", "?")
        for name in ("synthetic", "val"):
            if name not in extra:
                raise DataError(
                    f"category {category!r}", f"the feature gate needs the cached {name} features"
                )
        synthetic, val = extra["synthetic"], extra["val"]
        for other in (synthetic, val):
            if other.meta["config_hash"] != normal.meta["config_hash"]:
                raise DataError(
                    f"category {category!r}",
                    f"{other.meta.get('split')} features come from another backbone config",
                )
        pooling = self.params.pooling
        x = np.concatenate([pool(normal.features, pooling), pool(synthetic.features, pooling)])
        y = np.r_[np.zeros(len(normal.features), int), np.ones(len(synthetic.features), int)]
        head = self._fit_head(x, y)
        margin_val = head_margin(head, pool(val.features, pooling))
        labels = val.index["label"].to_numpy().astype(int)
        both = 0 < labels.sum() < len(labels)
        temperature = 1.0
        if self.params.calibrate and both:
            temperature = fit_temperature(margin_val, labels)
        elif self.params.calibrate:
            log.warning("feature_gate: val has one class; no temperature scaling (T = 1)")
        with atomic_path(state_dir / "head.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **head)
        train_margin = head_margin(head, x)
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "features": normal.meta,
            "synthetic": synthetic.meta.get("synthetic"),
            "n_train_normal": int(len(normal.features)),
            "n_train_anomalous": int(len(synthetic.features)),
            "train_accuracy": float(((train_margin > 0) == (y == 1)).mean()),
            "temperature": float(temperature),
            "n_val": int(len(labels)),
            "val_ece_uncalibrated": ece(expit(margin_val), labels),
            "val_ece": ece(apply_temperature(margin_val, temperature), labels),
        }
        save_json(state_dir / "state.json", state)
        log.info(
            "feature_gate %s: %d normal + %d synthetic, train accuracy %.3f, T = %.3f",
            category,
            state["n_train_normal"],
            state["n_train_anomalous"],
            state["train_accuracy"],
            temperature,
        )
        return state

    def _scorer_state(self, state_dir: Path):
        state = load_state(state_dir)
        with np.load(Path(state_dir) / "head.npz") as data:
            head = {k: data[k] for k in data.files}
        return state, head

    def scorer(self, state_dir: Path | None):
        """Scoring with the head loaded once; records each call's seconds in ``head_seconds``
        (pooling + head + temperature: the gate's own cost beyond the shared backbone)."""
        state, head = self._scorer_state(Path(state_dir))
        self.head_seconds: list[float] = []

        def run(inputs: MethodInputs, out_size: tuple[int, int]):
            start = time.perf_counter()
            result = self._score(Path(state_dir), state, head, inputs.require_features("gate"))
            self.head_seconds.append(time.perf_counter() - start)
            return result

        return run

    def _score(self, state_dir: Path, state: dict, head: dict, features: FeatureSet):
        check_features(state_dir, state, features)
        margin = head_margin(head, pool(features.features, self.params.pooling))
        probability = apply_temperature(margin, float(state["temperature"]))
        return probability, None, {"margin": margin}

    def score(self, state_dir: Path | None, inputs: MethodInputs, out_size: tuple[int, int]):
        state, head = self._scorer_state(Path(state_dir))
        return self._score(Path(state_dir), state, head, inputs.require_features("gate"))

    def latency(
        self, state_dir: Path | None, rows: pd.DataFrame, dataset_cfg: dict, backbone_cfg: dict
    ):
        """Seconds per image of the whole path (decode, backbone, pooling, head), and of the
        part before the head (``backbone_seconds``): a cascade whose heatmap method reads the
        same features pays that part once."""
        seconds = super().latency(state_dir, rows, dataset_cfg, backbone_cfg)
        head = np.asarray(self.head_seconds[1:])  # the first call is the untimed warm-up
        return seconds, {"backbone_seconds": np.clip(seconds - head, 0.0, None)}
