"""Coreset selection: determinism, monotone covering radius, exact k-center on a known case."""

from __future__ import annotations

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


# --- the batched selection loop of approximate_greedy_coreset ---


def reference_greedy(features, n, projection_dim, n_starts=10, seed=0):
    """Straightforward approximate greedy: one full distance vector per pick, no batching."""
    feats = torch.as_tensor(features).float()
    points = random_projection(feats, projection_dim, seed) if projection_dim else feats
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randperm(len(points), generator=gen)[:n_starts]
    min_dist = torch.cdist(points, points[starts]).mean(1)
    chosen = []
    for _ in range(n):
        j = int(torch.argmax(min_dist))
        chosen.append(j)
        min_dist = torch.minimum(min_dist, (points - points[j]).norm(dim=1))
    return torch.tensor(chosen)


@pytest.fixture
def clusters():
    """A small clustered bank: 40 anisotropic Gaussian blobs, 2000 x 32."""
    rng = np.random.default_rng(5)
    centres = rng.normal(scale=6.0, size=(40, 32))
    scales = rng.uniform(0.2, 2.0, size=(40, 32))
    labels = rng.integers(40, size=2000)
    return (centres[labels] + rng.normal(size=(2000, 32)) * scales[labels]).astype(np.float32)


@pytest.mark.parametrize("projection_dim", [0, 16, 128])
def test_covering_radius_matches_the_straightforward_greedy(clusters, projection_dim):
    n = 200
    fast = approximate_greedy_coreset(
        clusters, n, projection_dim=projection_dim, seed=2, progress=False
    )
    slow = reference_greedy(clusters, n, projection_dim, seed=2)
    assert covering_radius(clusters, fast) <= 1.02 * covering_radius(clusters, slow)
    assert covering_radius(clusters, fast) >= 0.98 * covering_radius(clusters, slow)


@pytest.mark.parametrize("batch", [1, 7, 32, 5000])
def test_batched_loop_is_the_exact_greedy_traversal(monkeypatch, batch):
    # Small integer coordinates make every squared distance exact in float32 whatever the
    # summation order, and produce many tied maxima: the picks must equal the reference's,
    # lowest index first among ties, for any candidate batch size (including misses).
    from iadbench.methods import coreset

    monkeypatch.setattr(coreset, "CANDIDATE_BATCH", batch)
    points = np.random.default_rng(1).integers(-4, 5, size=(1500, 6)).astype(np.float32)
    fast = approximate_greedy_coreset(points, 400, projection_dim=0, seed=7, progress=False)
    assert torch.equal(fast, reference_greedy(points, 400, 0, seed=7))


def test_approximate_coreset_is_deterministic_across_many_batches(clusters):
    runs = [
        approximate_greedy_coreset(clusters, 600, projection_dim=16, seed=11, progress=False)
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    other = approximate_greedy_coreset(clusters, 600, projection_dim=16, seed=12, progress=False)
    assert not torch.equal(runs[0], other)


def test_first_pick_is_the_farthest_on_average_from_the_starts(clusters):
    projected = random_projection(torch.from_numpy(clusters), 16, seed=4)
    starts = torch.randperm(len(clusters), generator=torch.Generator().manual_seed(4))[:10]
    expected = int(torch.cdist(projected, projected[starts]).mean(1).argmax())
    chosen = approximate_greedy_coreset(clusters, 5, projection_dim=16, seed=4, progress=False)
    assert int(chosen[0]) == expected


def test_duplicate_patches_are_never_picked_twice():
    # 12 distinct patches, each 25 times: after 12 picks every distance is 0, yet the remaining
    # picks must still be new indices, up to the whole bank.
    sites = np.random.default_rng(3).normal(size=(12, 20)).astype(np.float32)
    points = np.repeat(sites, 25, axis=0)
    for n in (12, 100, len(points)):
        chosen = approximate_greedy_coreset(points, n, projection_dim=8, seed=0, progress=False)
        assert chosen.dtype == torch.long and chosen.shape == (n,)
        assert len(set(chosen.tolist())) == n
        assert sorted((chosen[:12] // 25).tolist()) == list(range(12))
        assert covering_radius(points, chosen[:12]) < 1e-2  # cdist rounding, not 0


def test_coreset_leaves_the_callers_thread_count_alone(cloud):
    before = torch.get_num_threads()
    approximate_greedy_coreset(cloud, 40, projection_dim=8, progress=False)
    assert torch.get_num_threads() == before
