"""Calibration tests: synthetic data with known truth, hand-computed ECE, batch independence."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from iadbench.errors import ConfigError
from iadbench.metrics.calibration import (
    Calibrator,
    apply_isotonic,
    apply_platt,
    apply_temperature,
    ece,
    fit_isotonic,
    fit_platt,
    fit_temperature,
    nll,
)

METHODS = ("temperature", "platt", "isotonic", "identity")


def calibrated_margins(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Margins m and labels y ~ Bernoulli(expit(m)): expit(m) is calibrated by construction."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < expit(m)).astype(int)
    return m, y


def as_logits(m: np.ndarray, seed: int) -> np.ndarray:
    """(N, 2) logits with margin m and a random per-row offset (softmax ignores the offset)."""
    l0 = np.random.default_rng(seed).normal(0.0, 3.0, m.shape[0])
    return np.stack([l0, l0 + m], axis=1)


def method_data(method: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs each method expects: (N, 2) logits, raw scores on an odd scale, or probabilities."""
    m, y = calibrated_margins(n, seed)
    if method == "temperature":
        return as_logits(3.0 * m, seed + 1), y
    if method == "identity":
        return expit(m), y
    return 50.0 + 7.0 * m, y  # platt / isotonic: raw score, arbitrary offset and scale


def irls_logistic(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Reference unpenalised 1-D logistic MLE by Newton's method on the raw score."""
    x = np.stack([s, np.ones_like(s)], axis=1)
    w = np.zeros(2)
    for _ in range(100):
        p = expit(x @ w)
        grad = x.T @ (y - p)
        hess = (x * (p * (1 - p))[:, None]).T @ x
        step = np.linalg.solve(hess, grad)
        w += step
        if np.abs(step).max() < 1e-13:
            break
    return float(w[0]), float(w[1])


# ------------------------------------------------------------------ temperature scaling


def test_temperature_fixes_overconfidence():
    m, y = calibrated_margins(4000, seed=0)
    logits = as_logits(5.0 * m, seed=1)  # over-confident by a factor 5
    T = fit_temperature(logits, y)
    assert T > 1
    assert T == pytest.approx(5.0, rel=0.15)
    before = apply_temperature(logits, 1.0)
    after = apply_temperature(logits, T)
    assert nll(after, y) < nll(before, y) - 0.1
    assert ece(after, y) <= ece(before, y)


def test_temperature_is_the_nll_minimum():
    m, y = calibrated_margins(1000, seed=2)
    margins = 5.0 * m
    T = fit_temperature(margins, y)
    grid = np.exp(np.linspace(-5, 5, 4001))
    best_on_grid = min(nll(apply_temperature(margins, t), y) for t in grid)
    assert nll(apply_temperature(margins, T), y) <= best_on_grid + 1e-9


def test_temperature_underconfident_gives_t_below_one():
    m, y = calibrated_margins(4000, seed=3)
    T = fit_temperature(0.3 * m, y)
    assert T < 1
    assert T == pytest.approx(0.3, rel=0.15)


def test_temperature_is_deterministic_and_same_for_logits_and_margins():
    m, y = calibrated_margins(500, seed=4)
    logits = as_logits(4.0 * m, seed=5)
    t1 = fit_temperature(logits, y)
    assert fit_temperature(logits, y) == t1
    assert fit_temperature(logits[:, 1] - logits[:, 0], y) == pytest.approx(t1, rel=1e-8)


def test_temperature_monotone_and_auroc_unchanged():
    m, y = calibrated_margins(2000, seed=6)
    margins = 5.0 * m
    p = apply_temperature(margins, fit_temperature(margins, y))
    order = np.argsort(margins)
    assert np.all(np.diff(p[order]) > 0)
    assert roc_auc_score(y, p) == roc_auc_score(y, margins)


def test_apply_temperature_logits_equal_margins():
    m, _ = calibrated_margins(300, seed=7)
    logits = as_logits(m, seed=8)
    for T in (0.2, 1.0, 3.7):
        p = apply_temperature(logits, T)
        assert p.dtype == np.float64
        np.testing.assert_allclose(p, apply_temperature(logits[:, 1] - logits[:, 0], T), atol=1e-15)
        np.testing.assert_allclose(p, expit(m / T), atol=1e-12)


def test_apply_temperature_huge_logits_finite():
    logits = np.array(
        [[1e4, -1e4], [-1e4, 1e4], [1e300, -1e300], [-1e308, 1e308], [5e3, 5e3], [0.0, 0.0]]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for T in (0.01, 1.0, 100.0):
            p = apply_temperature(logits, T)
            assert np.isfinite(p).all()
            np.testing.assert_allclose(p, [0.0, 1.0, 0.0, 1.0, 0.5, 0.5], rtol=0, atol=1e-40)


@pytest.mark.parametrize("T", [0.0, -1.0, float("nan"), float("inf")])
def test_apply_temperature_rejects_bad_t(T):
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature([0.0, 1.0], T)


def test_temperature_rejects_bad_logit_shape():
    with pytest.raises(ValueError, match="shape"):
        fit_temperature(np.zeros((4, 3)), [0, 1, 0, 1])


# ------------------------------------------------------------------ Platt


def test_platt_recovers_known_parameters():
    rng = np.random.default_rng(10)
    a_true, b_true = 0.8, -8.0
    s = rng.normal(10.0, 3.0, 40000)
    y = (rng.random(s.shape[0]) < expit(a_true * s + b_true)).astype(int)
    a, b = fit_platt(s, y)
    assert a == pytest.approx(a_true, abs=0.05)
    assert b == pytest.approx(b_true, abs=0.5)
    # the fold-back from the standardised fit matches the MLE on the raw score
    a_ref, b_ref = irls_logistic(s, y.astype(float))
    assert a == pytest.approx(a_ref, abs=1e-4)
    assert b == pytest.approx(b_ref, abs=1e-3)


def test_platt_monotone_increasing():
    s, y = method_data("platt", 800, seed=11)
    a, b = fit_platt(s, y)
    assert a > 0
    grid = np.linspace(s.min() - 50, s.max() + 50, 500)
    p = apply_platt(grid, a, b)
    assert np.all(np.diff(p) >= 0)
    assert np.all(np.diff(p[(p > 1e-6) & (p < 1 - 1e-6)]) > 0)
    assert ((p >= 0) & (p <= 1)).all()


def test_platt_constant_scores_give_base_rate():
    a, b = fit_platt(np.full(10, 3.0), [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert a == pytest.approx(0.0, abs=1e-6)
    assert apply_platt([3.0], a, b)[0] == pytest.approx(0.3, abs=1e-6)


# ------------------------------------------------------------------ isotonic


def test_isotonic_matches_sklearn_and_is_a_valid_map():
    rng = np.random.default_rng(20)
    s = rng.uniform(0.0, 10.0, 600)
    y = (rng.random(600) < s / 10.0).astype(int)
    knots = fit_isotonic(s, y)
    assert isinstance(knots["x"], list) and isinstance(knots["y"], list)
    grid = np.linspace(-5.0, 15.0, 2001)
    p = apply_isotonic(knots, grid)
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y).predict(grid)
    np.testing.assert_allclose(p, ref, rtol=0, atol=1e-12)
    assert np.all(np.diff(p) >= 0)
    assert ((p >= 0) & (p <= 1)).all()
    assert len(np.unique(p)) < len(grid)  # ties: flat steps


def test_isotonic_clips_outside_fitted_range():
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([0, 0, 1, 0, 1, 1])
    knots = fit_isotonic(s, y)
    p = apply_isotonic(knots, [-1e9, 0.0, 1.0, 6.0, 7.0, 1e9])
    assert p[0] == p[1] == p[2] == knots["y"][0] == 0.0
    assert p[3] == p[4] == p[5] == knots["y"][-1] == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_json_round_trip_gives_identical_outputs(method):
    x, y = method_data(method, 400, seed=21)
    cal = Calibrator.fit(method, x, y)
    state = json.loads(json.dumps(cal.to_dict()))
    back = Calibrator.from_dict(state)
    assert back == cal
    x_test, _ = method_data(method, 300, seed=22)
    np.testing.assert_array_equal(back(x_test), cal(x_test))


def test_to_dict_does_not_share_state():
    cal = Calibrator.fit("isotonic", *method_data("isotonic", 100, seed=23))
    d = cal.to_dict()
    d["params"]["x"].append(1e9)
    assert cal.params["x"][-1] != 1e9


# ------------------------------------------------------------------ batch independence


@pytest.mark.parametrize("method", METHODS)
def test_batch_independence(method):
    x_val, y_val = method_data(method, 500, seed=30)
    cal = Calibrator.fit(method, x_val, y_val)
    x, _ = method_data(method, 200, seed=31)
    full = cal(x)
    assert full.shape == (200,) and full.dtype == np.float64
    idx = np.array([150, 3, 77, 3, 199])
    np.testing.assert_allclose(cal(x[idx]), full[idx], rtol=0, atol=1e-12)
    for i in (0, 42, 199):
        np.testing.assert_allclose(cal(x[i : i + 1]), full[i : i + 1], rtol=0, atol=1e-12)
    # appending very different images changes nothing for the others
    others, _ = method_data(method, 50, seed=32)
    mixed = cal(np.concatenate([x, 100.0 * others]))
    np.testing.assert_allclose(mixed[:200], full, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("label, n_norm, n_anom", [(0, 5, 0), (1, 0, 3)])
def test_single_class_raises_with_counts(method, label, n_norm, n_anom):
    x, _ = method_data(method, n_norm + n_anom, seed=40)
    with pytest.raises(
        ValueError, match=f"both classes on val: {n_norm} normal, {n_anom} anomalous"
    ):
        Calibrator.fit(method, x, np.full(n_norm + n_anom, label))


@pytest.mark.parametrize("method", METHODS)
def test_empty_and_nonfinite_inputs_raise(method):
    x, y = method_data(method, 20, seed=41)
    empty = np.zeros((0, 2)) if method == "temperature" else np.zeros(0)
    with pytest.raises(ValueError, match="empty"):
        Calibrator.fit(method, empty, np.zeros(0, dtype=int))
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Calibrator.fit(method, bad, y)
    bad[3] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        Calibrator.fit(method, bad, y)
    y_nan = y.astype(float)
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="labels"):
        Calibrator.fit(method, x, y_nan)
    with pytest.raises(ValueError, match="differ in length"):
        Calibrator.fit(method, x, y[:-1])


def test_unknown_method_and_bad_state():
    with pytest.raises(ConfigError, match="unknown calibration method 'beta'"):
        Calibrator.fit("beta", [0.1, 0.9], [0, 1])
    with pytest.raises(ConfigError):
        Calibrator.from_dict({"method": "beta", "params": {}})
    with pytest.raises(ValueError, match="keys"):
        Calibrator.from_dict({"method": "platt", "params": {"a": 1.0}})
    with pytest.raises(ValueError, match="temperature"):
        Calibrator("temperature", {"T": -2.0})
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibrator("isotonic", {"x": [0.0, 1.0], "y": [0.9, 0.1]})


def test_identity_passes_through_clipped():
    cal = Calibrator.fit("identity", [0.2, 0.7, 0.4], [0, 1, 1])
    assert cal == Calibrator("identity") and cal.params == {}
    out = cal([-0.5, 0.0, 0.2, 0.999, 1.0, 1.7])
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.2, 0.999, 1.0, 1.0])
    assert out.dtype == np.float64


# ------------------------------------------------------------------ NLL and ECE


def test_nll_hand_values_and_clipping():
    assert nll([0.8, 0.3], [1, 0]) == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)
    # 1 - (1 - 1e-12) is not exactly 1e-12 in float64, hence the loose tolerance
    assert nll([0.0, 1.0], [1, 0]) == pytest.approx(-math.log(1e-12), abs=1e-4)
    assert nll([1.0, 0.0], [1, 0]) == pytest.approx(0.0, abs=1e-11)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nll([1.2], [1])


def test_ece_zero_for_perfectly_calibrated_bins():
    # bin of p = 0.8 with 80 % anomalous; bin of p = 0.3 (predicted normal, confidence 0.7)
    # with 70 % normal; both sit strictly inside a 1/15-wide bin
    probs = np.r_[np.full(10, 0.8), np.full(10, 0.3)]
    labels = np.r_[np.ones(8), np.zeros(2), np.ones(3), np.zeros(7)].astype(int)
    assert ece(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_computed():
    # confidences 0.9, 0.9, 0.7, 0.7, 0.62; correct 1, 0, 0, 1, 1
    # bins: {0.9, 0.9}: |0.5 - 0.9| * 2/5; {0.7, 0.7}: |0.5 - 0.7| * 2/5; {0.62}: |1 - 0.62| * 1/5
    # = (0.8 + 0.4 + 0.38) / 5 = 0.316. (Binning on p instead of confidence would give 0.396.)
    probs = [0.9, 0.1, 0.7, 0.3, 0.62]
    labels = [1, 1, 0, 0, 1]
    assert ece(probs, labels) == pytest.approx(0.316, abs=1e-12)


def test_ece_bins_are_right_inclusive():
    # bins=4, edges 0, .25, .5, .75, 1: confidence 0.75 falls in (0.5, 0.75], 0.8 in (0.75, 1]
    # -> (|1 - 0.75| + |0 - 0.8|) / 2 = 0.525; left-inclusive bins would give |0.5 - 0.775| = 0.275
    assert ece([0.75, 0.8], [1, 0], bins=4) == pytest.approx(0.525, abs=1e-12)
    # p = 0 and p = 1: confidence 1, correct -> 0; wrong -> 1
    assert ece([0.0, 1.0], [0, 1]) == pytest.approx(0.0, abs=1e-15)
    assert ece([0.0, 1.0], [1, 0]) == pytest.approx(1.0, abs=1e-15)


def test_ece_overconfident_constant():
    assert ece(np.full(10, 0.9), [1, 0] * 5) == pytest.approx(0.4, abs=1e-12)
    with pytest.raises(ValueError, match="bins"):
        ece([0.5], [1], bins=0)
