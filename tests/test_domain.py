"""Domain distances: zero on identical data, monotone in a shift, symmetric, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from iadbench.metrics.domain import (
    cosine_distance_of_means,
    domain_distances,
    median_bandwidth,
    mmd_rbf,
    sliced_wasserstein,
    subsample,
)


def _gauss(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


@pytest.fixture
def base() -> np.ndarray:
    return _gauss(200, 8, 0.0, seed=1)


def test_identical_samples_are_at_distance_zero(base):
    assert mmd_rbf(base, base) == pytest.approx(0.0, abs=1e-12)
    assert sliced_wasserstein(base, base) == pytest.approx(0.0, abs=1e-12)
    # Shift away from the origin so the mean vector is not ~0 (cosine needs a direction).
    assert cosine_distance_of_means(base + 3, base + 3) == pytest.approx(0.0, abs=1e-12)
    dist = domain_distances(base + 3, base + 3, seed=0, max_samples=100)
    assert dist["mmd"] == pytest.approx(0.0, abs=1e-12)
    assert dist["wasserstein"] == pytest.approx(0.0, abs=1e-12)


def test_larger_shift_gives_larger_distances(base):
    sigma = median_bandwidth(base, base)
    results = [
        domain_distances(base, _gauss(200, 8, shift, seed=2), bandwidth=sigma)
        for shift in (0.0, 0.5, 1.0, 2.0)
    ]
    for key in ("mmd", "wasserstein"):
        values = [r[key] for r in results]
        assert values == sorted(values), key
        assert values[-1] > 5 * values[0], key
    # Cosine needs a direction change: rotate the mean from e1 towards e2.
    e1 = np.eye(8)[0] * 3
    e2 = np.eye(8)[1] * 3
    cos = [cosine_distance_of_means(base + e1, base + e1 + t * e2) for t in (0.0, 0.5, 1.0, 3.0)]
    assert cos == sorted(cos) and cos[-1] > 0.1


def test_symmetric(base):
    other = _gauss(150, 8, 0.7, seed=3)
    assert mmd_rbf(base, other) == pytest.approx(mmd_rbf(other, base), rel=1e-12)
    assert sliced_wasserstein(base, other, seed=4) == pytest.approx(
        sliced_wasserstein(other, base, seed=4), rel=1e-12
    )
    assert cosine_distance_of_means(base + 1, other) == pytest.approx(
        cosine_distance_of_means(other, base + 1), rel=1e-12
    )
    forward = domain_distances(base, other, seed=5, max_samples=120)
    backward = domain_distances(other, base, seed=5, max_samples=120)
    assert forward == pytest.approx(backward, rel=1e-12)


def test_deterministic_for_a_seed(base):
    other = _gauss(300, 8, 0.5, seed=6)
    first = domain_distances(base, other, seed=7, max_samples=50)
    assert domain_distances(base, other, seed=7, max_samples=50) == first
    assert domain_distances(base, other, seed=8, max_samples=50) != first
    assert subsample(other, 50, 7).shape == (50, 8)
    assert np.array_equal(subsample(other, 500, 7), other)


def test_one_dimensional_wasserstein_matches_hand_cases():
    # In 1-D every unit projection is +-1, so the sliced distance is the plain W1.
    x = np.array([[0.0], [1.0], [3.0]])
    y = np.array([[5.0], [6.0], [8.0]])
    assert sliced_wasserstein(x, y, n_projections=16) == pytest.approx(5.0)
    # Unequal sizes: {0, 2} vs {1} moves half the mass by 1 each way.
    assert sliced_wasserstein([[0.0], [2.0]], [[1.0]], n_projections=4) == pytest.approx(1.0)


def test_mmd_hand_case():
    # Two single points at distance 1 with sigma 1: k(x, y) = exp(-1/2), MMD² = 2 - 2 k.
    assert mmd_rbf([[0.0]], [[1.0]], bandwidth=1.0) == pytest.approx(2 - 2 * np.exp(-0.5))


def test_median_bandwidth_and_errors():
    x = np.array([[0.0], [1.0]])
    y = np.array([[3.0]])
    # Pairwise distances 1, 3, 2 -> median 2.
    assert median_bandwidth(x, y) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="dimensions differ"):
        mmd_rbf(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="zero mean"):
        cosine_distance_of_means(np.zeros((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        sliced_wasserstein([[np.nan]], [[1.0]])
    with pytest.raises(ValueError, match="bandwidth"):
        mmd_rbf(x, y, bandwidth=0.0)
