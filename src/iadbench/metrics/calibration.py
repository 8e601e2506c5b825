"""Score calibration for a gate -> heatmap cascade: one global, monotone map per score source.

A classifier gate emits 2-class logits and a heatmap method (PatchCore) a raw image score on an
arbitrary scale. To combine or threshold them on one scale, each is mapped to P(anomalous) by a
calibrator fitted once on the validation split (never on the reported test split).

Every map here is a fixed element-wise function once fitted, so an image's calibrated score never
depends on which other images share its batch, and a single image scores exactly as in a batch.
Fitted parameters are plain floats and lists, so a ``Calibrator`` round-trips through state.json
and applies without scikit-learn at scoring time.

References: Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 (temperature
scaling, ECE); Platt 1999 (sigmoid fit); Zadrozny & Elkan 2002 (isotonic calibration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from scipy.special import expit

from ..errors import ConfigError

METHODS = ("temperature", "platt", "isotonic", "identity")
LOG_T_BOUNDS = (-5.0, 5.0)
"""Search interval of log T: T in [e^-5, e^5] ~ [0.0067, 148], wide enough for real gates."""
PLATT_C = 1e6
"""Inverse L2 strength of the Platt fit: large, so the fit is effectively the plain MLE."""
NLL_EPS = 1e-12


# ------------------------------------------------------------------ input checks


def _check_labels(labels: ArrayLike, n: int) -> np.ndarray:
    """Return 1-D 0/1 labels as a float array; reject wrong length or non-binary values."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"labels ({y.shape[0]}) and scores ({n}) differ in length")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(f"labels must be 0/1 or bool, got dtype {y.dtype}")
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            raise ValueError(f"labels must be 0/1 or bool, found values {np.unique(y[bad])[:5]}")
    return y.astype(np.float64)


def _check_finite(x: np.ndarray, what: str) -> None:
    if x.size == 0:
        raise ValueError(f"{what} are empty")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or Inf ({int((~np.isfinite(x)).sum())} values)")


def _as_scores(scores: ArrayLike, what: str = "scores") -> np.ndarray:
    """1-D (or 0-d, one image) finite float64 scores."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim > 1:
        raise ValueError(f"{what} must be 1-D, got shape {s.shape}")
    _check_finite(s, what)
    return s


def _margins(logits: ArrayLike) -> np.ndarray:
    """Logit margin (logit1 - logit0) from (N, 2) logits; (N,) input is taken as margins already.

    A 1-D input is always read as margins, so a single image's two logits must be passed as
    shape (1, 2). softmax over two classes is exactly expit of the margin, so nothing is lost.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2:
        if z.shape[1] != 2:
            raise ValueError(f"logits must be (N, 2) or (N,) margins, got shape {z.shape}")
        _check_finite(z, "logits")
        return z[:, 1] - z[:, 0]
    if z.ndim > 2:
        raise ValueError(f"logits must be (N, 2) or (N,) margins, got shape {z.shape}")
    _check_finite(z, "logits")
    return z


def _check_fit_inputs(x: np.ndarray, labels: ArrayLike) -> np.ndarray:
    """Labels for fitting: same length as x and both classes present (else nothing to fit)."""
    if x.ndim != 1:
        raise ValueError(f"fitting needs a 1-D batch of scores, got shape {x.shape}")
    y = _check_labels(labels, x.shape[0])
    n_anom = int(y.sum())
    n_norm = int(y.shape[0] - n_anom)
    if n_anom == 0 or n_norm == 0:
        raise ValueError(
            f"calibration needs both classes on val: {n_norm} normal, {n_anom} anomalous"
        )
    return y


# ------------------------------------------------------------------ temperature scaling


def _binary_nll_from_margin(z: np.ndarray, y: np.ndarray) -> float:
    """Mean -log softmax probability of the true class, via softplus so huge margins stay finite."""
    sign = 2.0 * y - 1.0
    return float(np.mean(np.logaddexp(0.0, -sign * z)))


def fit_temperature(logits: ArrayLike, labels: ArrayLike) -> float:
    """One scalar T > 0 minimising the mean NLL of softmax(logits / T) (Guo et al. 2017).

    ``logits`` is (N, 2) with class 1 = anomalous, or (N,) margins logit1 - logit0. The NLL is
    convex in 1/T, hence unimodal in log T, so a bounded Brent search over log T in
    ``LOG_T_BOUNDS`` finds the optimum deterministically. Separable val data drive T to the lower
    bound; margins anti-correlated with the labels drive it to the upper bound (P -> 0.5), since a
    negative T would invert the ranking.
    """
    m = _margins(logits)
    y = _check_fit_inputs(m, labels)
    res = minimize_scalar(
        lambda log_t: _binary_nll_from_margin(m * math.exp(-log_t), y),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-10, "maxiter": 1000},
    )
    return float(math.exp(float(res.x)))


def apply_temperature(logits: ArrayLike, T: float) -> np.ndarray:
    """P(anomalous) = expit(margin / T) as float64; element-wise, so batch-independent.

    expit is evaluated stably (no overflow, no NaN for huge logits); in float64 it saturates to
    exactly 1.0 once margin / T exceeds ~37, which can create ties a ranking metric would see.
    """
    T = float(T)
    if not (math.isfinite(T) and T > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {T}")
    with np.errstate(over="ignore"):
        return np.asarray(expit(_margins(logits) / T), dtype=np.float64)


# ------------------------------------------------------------------ Platt scaling


def fit_platt(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Fit P(anomalous) = expit(a * score + b) by (nearly unregularised) logistic regression.

    The score is standardised by its mean/std before the sklearn lbfgs fit, because raw image
    scores can sit on any scale and offset (badly conditioned for lbfgs); the coefficients are
    then folded back onto the raw score. a < 0 would mean the score is anti-correlated with the
    labels on val -- a red flag about the score, not something to hide here.
    """
    from sklearn.linear_model import LogisticRegression

    s = _as_scores(scores)
    y = _check_fit_inputs(s, labels)
    mu = float(s.mean())
    sd = float(s.std())
    if not (sd > 0 and math.isfinite(sd)):
        sd = 1.0  # constant scores: the slope is 0 whatever the scale
    z = ((s - mu) / sd)[:, None]
    model = LogisticRegression(C=PLATT_C, solver="lbfgs", max_iter=1000, tol=1e-10)
    model.fit(z, y.astype(int))
    w = float(model.coef_[0, 0])
    c = float(model.intercept_[0])
    a = w / sd
    b = c - a * mu
    return a, b


def apply_platt(scores: ArrayLike, a: float, b: float) -> np.ndarray:
    """P(anomalous) = expit(a * score + b), float64, element-wise."""
    s = _as_scores(scores)
    with np.errstate(over="ignore"):
        return np.asarray(expit(float(a) * s + float(b)), dtype=np.float64)


# ------------------------------------------------------------------ isotonic regression


def fit_isotonic(scores: ArrayLike, labels: ArrayLike) -> dict[str, list[float]]:
    """Non-decreasing map of the score to P(anomalous), as knots {"x": [...], "y": [...]}.

    Uses sklearn ``IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1, increasing=True)``
    and keeps only its ``X_thresholds_``/``y_thresholds_``, which ``apply_isotonic`` interpolates
    with ``np.interp`` -- identical to sklearn's ``predict`` but JSON-serialisable and free of
    sklearn at scoring time. The output is piecewise constant over wide stretches (flat steps),
    so distinct raw scores get tied probabilities: AUROC/AP computed on the calibrated scores can
    differ from those of the raw score. Rank on the raw score, calibrate for thresholds/fusion.
    """
    from sklearn.isotonic import IsotonicRegression

    s = _as_scores(scores)
    y = _check_fit_inputs(s, labels)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
    iso.fit(s, y)
    return {
        "x": [float(v) for v in iso.X_thresholds_],
        "y": [float(v) for v in iso.y_thresholds_],
    }


def apply_isotonic(knots: dict[str, Any], scores: ArrayLike) -> np.ndarray:
    """Linear interpolation between knots; scores outside the fitted range take the end values."""
    s = _as_scores(scores)
    x = np.asarray(knots["x"], dtype=np.float64)
    y = np.asarray(knots["y"], dtype=np.float64)
    return np.asarray(np.interp(s, x, y), dtype=np.float64)


# ------------------------------------------------------------------ the calibrator object


def _check_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise params to plain Python floats/lists (state.json friendly)."""
    if not isinstance(params, dict):
        raise ValueError(f"calibrator params must be a dict, got {type(params).__name__}")
    need = {"temperature": {"T"}, "platt": {"a", "b"}, "isotonic": {"x", "y"}, "identity": set()}
    missing = need[method] - set(params)
    extra = set(params) - need[method]
    if missing or extra:
        raise ValueError(
            f"{method} calibrator params must have keys {sorted(need[method])}, "
            f"got {sorted(params)}"
        )
    if method == "temperature":
        T = float(params["T"])
        if not (math.isfinite(T) and T > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {T}")
        return {"T": T}
    if method == "platt":
        a, b = float(params["a"]), float(params["b"])
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"platt parameters must be finite, got a={a}, b={b}")
        return {"a": a, "b": b}
    if method == "isotonic":
        x = [float(v) for v in params["x"]]
        y = [float(v) for v in params["y"]]
        if not x or len(x) != len(y):
            raise ValueError(f"isotonic knots need equal, non-zero lengths: {len(x)} x, {len(y)} y")
        xa, ya = np.asarray(x), np.asarray(y)
        if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
            raise ValueError("isotonic knots contain NaN or Inf")
        if (np.diff(xa) < 0).any() or (np.diff(ya) < 0).any():
            raise ValueError("isotonic knots must be non-decreasing in x and y")
        if ya[0] < 0 or ya[-1] > 1:
            raise ValueError("isotonic knot values must lie in [0, 1]")
        return {"x": x, "y": y}
    return {}


@dataclass(frozen=True)
class Calibrator:
    """A fitted, global score -> P(anomalous) map; state is ``method`` plus plain ``params``.

    ``params``: {"T": ..} (temperature), {"a": .., "b": ..} (platt), {"x": [..], "y": [..]}
    (isotonic), {} (identity: scores already in [0, 1], only clipped).
    """

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"unknown calibration method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        object.__setattr__(self, "params", _check_params(self.method, self.params))

    @classmethod
    def fit(cls, method: str, scores_or_logits: ArrayLike, labels: ArrayLike) -> Calibrator:
        """Fit on the val split. Inputs are validated for every method, identity included, so
        switching the method in the config never changes which val data are accepted."""
        if method not in METHODS:
            raise ConfigError(
                f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}"
            )
        if method == "temperature":
            return cls(method, {"T": fit_temperature(scores_or_logits, labels)})
        if method == "platt":
            a, b = fit_platt(scores_or_logits, labels)
            return cls(method, {"a": a, "b": b})
        if method == "isotonic":
            return cls(method, fit_isotonic(scores_or_logits, labels))
        s = _as_scores(scores_or_logits)
        _check_fit_inputs(s, labels)
        return cls(method, {})

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """P(anomalous) for scores (or (N, 2) / (N,) logits for temperature), float64."""
        if self.method == "temperature":
            return apply_temperature(x, self.params["T"])
        if self.method == "platt":
            return apply_platt(x, self.params["a"], self.params["b"])
        if self.method == "isotonic":
            return apply_isotonic(self.params, x)
        return np.clip(_as_scores(x), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (floats and lists only) for state.json."""
        params = {k: (list(v) if isinstance(v, list) else v) for k, v in self.params.items()}
        return {"method": self.method, "params": params}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        """Inverse of ``to_dict``; validates the stored parameters."""
        if not isinstance(d, dict) or "method" not in d:
            raise ValueError(f"calibrator state must be a dict with a 'method' key, got {d!r}")
        return cls(d["method"], dict(d.get("params", {})))


# ------------------------------------------------------------------ calibration metrics


def _check_probs(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = _as_scores(probs, "probabilities")
    if p.ndim != 1:
        p = p.reshape(1)
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must lie in [0, 1]")
    y = _check_labels(labels, p.shape[0])
    return p, y


def nll(probs: ArrayLike, labels: ArrayLike) -> float:
    """Mean binary negative log-likelihood of P(anomalous); p clipped to [1e-12, 1 - 1e-12] so
    a confident miss (e.g. a flat isotonic step at 0 or 1) costs ~27.6 rather than inf."""
    p, y = _check_probs(probs, labels)
    p = np.clip(p, NLL_EPS, 1.0 - NLL_EPS)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def ece(probs: ArrayLike, labels: ArrayLike, bins: int = 15) -> float:
    """Expected calibration error, binary form of Guo et al. (2017), as a float in [0, 1].

    With p = P(anomalous): the predicted class is anomalous iff p >= 0.5; its confidence is
    c = max(p, 1 - p); it is correct iff it equals the label. c is binned into ``bins`` equal-width
    bins with edges ``np.linspace(0, 1, bins + 1)``, right-inclusive ((e_{k-1}, e_k]) except that
    the first bin also holds 0. Then

        ECE = sum_k (|B_k| / N) * |acc(B_k) - conf(B_k)|,

    acc = fraction of correct predictions in the bin, conf = mean c in the bin; empty bins add 0.
    As c >= 0.5, bins below 0.5 are always empty. Binning on confidence (not on p) follows Guo et
    al.; it lets errors of opposite sign at p and 1 - p share a bin, so a low ECE does not prove
    the reliability curve of p is diagonal -- report NLL alongside.
    """
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    p, y = _check_probs(probs, labels)
    pred = p >= 0.5
    conf = np.maximum(p, 1.0 - p)
    correct = (pred == (y > 0.5)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, int(bins) - 1)
    n = float(p.shape[0])
    total = 0.0
    for k in np.unique(idx):
        in_bin = idx == k
        total += (in_bin.sum() / n) * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(total)
