"""Coreset selection: determinism, monotone covering radius, exact k-center on a known case."""

import numpy as np
import pytest
import torch

from iadbench.methods.coreset import (
    approximate_greedy_coreset,
    covering_radius,
    greedy_coreset,
    random_projection,
)


@pytest.fixture
def cloud():
    rng = np.random.default_rng(0)
    return rng.normal(size=(600, 24)).astype(np.float32)


def test_approximate_coreset_is_deterministic_for_a_seed(cloud):
    a = approximate_greedy_coreset(cloud, 50, projection_dim=8, seed=3, progress=False)
    b = approximate_greedy_coreset(cloud, 50, projection_dim=8, seed=3, progress=False)
    c = approximate_greedy_coreset(cloud, 50, projection_dim=8, seed=4, progress=False)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert len(set(a.tolist())) == 50


@pytest.mark.parametrize("selector", ["exact", "approximate"])
def test_covering_radius_never_increases_as_points_are_added(cloud, selector):
    if selector == "exact":
        order = greedy_coreset(cloud, 80, seed=1)
    else:
        order = approximate_greedy_coreset(cloud, 80, projection_dim=0, seed=1, progress=False)
    radii = [covering_radius(cloud, order[:m]) for m in range(1, 81)]
    assert all(later <= earlier + 1e-6 for earlier, later in zip(radii, radii[1:]))
    assert radii[-1] < radii[0]


def test_exact_greedy_selects_the_true_k_center_of_separated_sites():
    # Points sit on three exact sites: the optimal 3-center has radius 0 and greedy must find it.
    sites = np.array([[0.0, 0.0], [7.0, 1.0], [2.0, 9.0]], dtype=np.float32)
    points = np.repeat(sites, 5, axis=0)
    for seed in range(5):
        chosen = greedy_coreset(points, 3, seed=seed).numpy()
        assert sorted(chosen // 5) == [0, 1, 2]
        assert covering_radius(points, chosen) == 0.0


def test_exact_greedy_is_within_twice_the_brute_force_optimum():
    from itertools import combinations

    for seed in range(4):
        points = np.random.default_rng(seed).uniform(size=(12, 2)).astype(np.float32)
        optimum = min(covering_radius(points, list(t)) for t in combinations(range(12), 3))
        greedy = covering_radius(points, greedy_coreset(points, 3, seed=seed))
        assert optimum <= greedy <= 2 * optimum + 1e-6


def test_random_projection_matches_linear_layer_init_bounds(cloud):
    projected = random_projection(torch.from_numpy(cloud), 8, seed=0)
    assert projected.shape == (600, 8)
    again = random_projection(torch.from_numpy(cloud), 8, seed=0)
    assert torch.equal(projected, again)


def test_coreset_size_is_validated(cloud):
    with pytest.raises(ValueError, match="coreset size"):
        approximate_greedy_coreset(cloud, 0, progress=False)
    with pytest.raises(ValueError, match="coreset size"):
        greedy_coreset(cloud, 601)
