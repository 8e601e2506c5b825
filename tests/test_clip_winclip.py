"""WinCLIP scoring maths on hand-made tensors (no model)."""

import math

import pytest
import torch

from iadbench.clip.scoring import anomaly_probability, upsample
from iadbench.methods.winclip.params import TEMPERATURE
from iadbench.methods.winclip.windows import (
    association_scores,
    combine_few_shot,
    few_shot_map,
    harmonic_aggregation,
    reference_memory,
    window_indices,
    window_sets,
    zero_shot,
)


def test_window_indices_are_the_sliding_windows_of_the_grid():
    w2 = window_indices((4, 4), 2)
    assert w2.shape == (9, 4)
    # Window 5 is row 1, column 2 of the 3x3 window positions: patches (1,2),(1,3),(2,2),(2,3).
    assert w2[5].tolist() == [6, 7, 10, 11]
    assert window_indices((4, 4), 3)[3].tolist() == [5, 6, 7, 9, 10, 11, 13, 14, 15]
    # WinCLIP's 15x15 grid: 196 windows of 2x2 and 169 of 3x3.
    assert [w.shape for w in window_sets((15, 15))] == [(196, 4), (169, 9)]
    assert window_indices((3, 5), 2).shape == (8, 4)  # 2 x 4 positions on a non-square grid
    with pytest.raises(ValueError, match="no 5x5 windows"):
        window_indices((4, 4), 5)


def test_harmonic_aggregation_equals_a_hand_computation_on_4x4():
    # 2x2 windows on 4x4: window j gets score 1/(j+1), so 1/s_W = j+1.
    scores = 1.0 / torch.arange(1, 10, dtype=torch.float64)[None]
    out = harmonic_aggregation(scores, window_indices((4, 4), 2), (4, 4))[0]
    # (0,0): only window 0 -> 1/1. (0,1): windows 0,1 -> 2/(1+2).
    # (1,1): windows 0,1,3,4 -> 4/(1+2+4+5). (1,2): windows 1,2,4,5 -> 4/(2+3+5+6).
    # (2,0): windows 3,6 -> 2/(4+7). (3,3): only window 8 -> 1/9.
    expected = {
        (0, 0): 1.0,
        (0, 1): 2 / 3,
        (1, 1): 4 / 12,
        (1, 2): 4 / 16,
        (2, 0): 2 / 11,
        (3, 3): 1 / 9,
    }
    for (r, c), value in expected.items():
        assert out[r, c].item() == pytest.approx(value)
    # Every patch, by brute force over window positions.
    for r, c in [(i, j) for i in range(4) for j in range(4)]:
        holders = [
            3 * wr + wc
            for wr in range(3)
            for wc in range(3)
            if wr <= r < wr + 2 and wc <= c < wc + 2
        ]
        assert out[r, c].item() == pytest.approx(len(holders) / sum(j + 1 for j in holders))


def test_harmonic_aggregation_is_per_image_and_scale_preserving():
    windows = window_indices((4, 4), 3)
    scores = torch.tensor([[0.2, 0.2, 0.2, 0.2], [0.1, 0.9, 0.9, 0.9]])
    out = harmonic_aggregation(scores, windows, (4, 4))
    assert torch.allclose(out[0], torch.full((4, 4), 0.2))  # a constant stays constant
    assert out[1, 0, 0] == pytest.approx(0.1)  # corner: window 0 only
    assert out[1, 3, 3] == pytest.approx(0.9)
    assert out[1, 1, 1] == pytest.approx(4 / (10 + 3 / 0.9))  # centre: all four windows
    with pytest.raises(ValueError, match="lie in no window"):
        harmonic_aggregation(torch.ones(1, 4), window_indices((4, 4), 2)[:4], (4, 4))


def _unit(theta: float) -> torch.Tensor:
    """cos(theta) along the normal prototype e0, sin(theta) along the anomalous e1."""
    return torch.tensor([math.cos(theta), math.sin(theta), 0.0])


PROTOTYPES = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_anomaly_probability_is_the_two_class_softmax_at_tau_007():
    theta = 0.9
    expected = 1 / (1 + math.exp(-(math.sin(theta) - math.cos(theta)) / 0.07))
    got = anomaly_probability(3.0 * _unit(theta), 2.0 * PROTOTYPES, 0.07)  # scale-free (cosines)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert anomaly_probability(_unit(0.0), PROTOTYPES, 0.07).item() < 1e-5
    assert anomaly_probability(_unit(math.pi / 4), PROTOTYPES, 0.07).item() == pytest.approx(0.5)


def test_zero_shot_is_the_three_way_harmonic_mean_with_the_image_score():
    grid = (4, 4)
    windows = window_sets(grid)
    image_theta, window_theta = 1.0, 0.6
    cls = _unit(image_theta)[None]
    embs = [_unit(window_theta).expand(1, len(w), 3) for w in windows]
    score, maps = zero_shot(cls, embs, windows, PROTOTYPES, grid)
    p_img = anomaly_probability(_unit(image_theta), PROTOTYPES, TEMPERATURE).item()
    p_win = anomaly_probability(_unit(window_theta), PROTOTYPES, TEMPERATURE).item()
    assert score.item() == pytest.approx(p_img)
    assert maps.shape == (1, 4, 4)
    assert torch.allclose(maps, torch.full_like(maps, 3 / (1 / p_img + 2 / p_win)))
    _, window_only = zero_shot(cls, embs, windows, PROTOTYPES, grid, include_image=False)
    assert torch.allclose(window_only, torch.full_like(maps, p_win))


def test_association_score_is_half_the_cosine_distance_to_the_nearest_reference():
    memory = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    queries = torch.tensor([[[5.0, 0.0], [-1.0, 0.0], [1.0, -1.0], [0.0, -3.0]]])
    got = association_scores(queries, memory, chunk=3)
    # same direction -> 0; opposite of one, orthogonal to the other -> 0.5;
    # 45 degrees from the first -> (1 - cos 45)/2; opposite of the second -> 0.5.
    expected = [0.0, 0.5, (1 - math.sqrt(0.5)) / 2, 0.5]
    assert got.shape == (1, 4)
    assert got[0].tolist() == pytest.approx(expected, abs=1e-6)


def test_few_shot_map_is_zero_on_a_reference_and_averages_the_scales():
    torch.manual_seed(0)
    grid = (4, 4)
    windows = [window_indices(grid, 2), window_indices(grid, 3)]
    patches = torch.randn(2, 4, 4, 8)
    wins = [torch.randn(2, len(w), 8) for w in windows]
    memory = reference_memory(patches[:1], [w[:1] for w in wins])
    assert memory.patches.shape == (16, 8) and [m.shape for m in memory.windows] == [
        (9, 8),
        (4, 8),
    ]
    out = few_shot_map(patches, wins, windows, memory)
    assert torch.allclose(out[0], torch.zeros(4, 4), atol=1e-6)  # the reference itself
    assert (out[1] > 0).all()
    # Mean of three scales: patch scores, and window scores aggregated to patches.
    per_scale = [association_scores(patches[1:], memory.patches)[0]]
    for w, emb, bank in zip(windows, wins, memory.windows):
        per_scale.append(harmonic_aggregation(association_scores(emb[1:], bank), w, grid)[0])
    assert torch.allclose(out[1], sum(per_scale) / 3)


def test_few_shot_combination_averages_maps_and_adds_the_few_shot_maximum():
    zero_map = torch.full((1, 2, 2), 0.4)
    few_map = torch.tensor([[[0.0, 0.2], [0.1, 0.6]]])
    score, maps = combine_few_shot(zero_map, torch.tensor([0.8]), few_map)
    assert score.tolist() == pytest.approx([(0.8 + 0.6) / 2])
    assert torch.allclose(maps[0], torch.tensor([[0.2, 0.3], [0.25, 0.5]]))


def test_bilinear_upsampling_keeps_corners_and_interpolates_between():
    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    out = upsample(maps, (4, 4))
    assert out.shape == (1, 4, 4)
    assert out[0, 0, 0] == 0.0 and out[0, 3, 3] == 3.0  # half-pixel centres: edges clamp
    assert out[0, 0, 1].item() == pytest.approx(0.25)  # 3/4 of 0 + 1/4 of 1
    assert out[0, 1, 1].item() == pytest.approx(0.25 + 0.5)
