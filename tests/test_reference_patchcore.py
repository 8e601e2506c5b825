"""PatchCore against stored outputs of anomalib 2.7.0's ``PatchcoreModel`` at equal weights.

``tests/fixtures/reference/patchcore.{npz,json}`` were written by
``benchmarks/compare_reference.py --methods patchcore --write-fixture`` (anomalib is too heavy
for CI). Here only our side runs: EfficientNet-Lite0 with the package weights, the stored images
through the harness's input path, our PatchCore with the switches the JSON records (nearest
upsampling, raw-distance image score, mirror blur border) with the full bank and with our
coreset (which anomalib was handed). Also the blur border switch against a hand computation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from iadbench.methods.smoothing import smooth_map

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "patchcore"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference.common import load_fixture  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    return load_fixture("patchcore")


@pytest.mark.parametrize("setting", ["bank full", "our coreset"])
def test_patchcore_equals_anomalib_fixture(reference, setting):
    from reference.lite0 import input_tensor, load_ours, run_ours

    meta, ref = reference
    torch.set_num_threads(2)
    cfg = meta["settings"][setting]
    backbone = load_ours("patchcore")
    size = ref["test"].shape[1]
    train_x = input_tensor(list(ref["train"]), size, backbone.preprocessing)
    test_x = input_tensor(list(ref["test"]), size, backbone.preprocessing)
    scores, maps, _, _ = run_ours(cfg, backbone, train_x, test_x, "patchcore")
    key = setting.replace(" ", "_")
    assert maps.shape == ref[f"{key}_maps"].shape == (2, size, size)
    assert np.abs(scores - ref[f"{key}_scores"]).max() <= TOL
    assert np.abs(maps - ref[f"{key}_maps"]).max() <= TOL
    # the fixture is not degenerate: the defective image scores above the good one
    assert ref[f"{key}_scores"][1] > ref[f"{key}_scores"][0] > 0


def gaussian_by_hand(x: np.ndarray, sigma: float, pad_mode: str) -> np.ndarray:
    """Separable Gaussian (radius int(4 sigma + 0.5)) over an explicitly padded array."""
    radius = int(4 * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(x.astype(np.float64), radius, mode=pad_mode)
    rows = np.stack([np.convolve(r, k, mode="valid") for r in padded])
    return np.stack([np.convolve(c, k, mode="valid") for c in rows.T]).T


def test_blur_border_modes_match_hand_padding():
    grid = np.zeros((6, 6), np.float32)
    grid[0, 0], grid[2, 5], grid[4, 1] = 3.0, 1.0, 2.0
    # numpy "symmetric" repeats the edge (scipy reflect); numpy "reflect" does not (torch's)
    for border, pad in (("reflect", "symmetric"), ("mirror", "reflect")):
        out = smooth_map(grid, (6, 6), 1.0, "bilinear", border)
        np.testing.assert_allclose(out, gaussian_by_hand(grid, 1.0, pad), atol=1e-6)
    a = smooth_map(grid, (6, 6), 1.0, border="reflect")
    b = smooth_map(grid, (6, 6), 1.0, border="mirror")
    assert np.abs(a - b).max() > 1e-2  # the corner peak makes the two borders differ
    with pytest.raises(ValueError, match="blur border"):
        smooth_map(grid, (6, 6), 1.0, border="wrap")


def test_blur_border_matches_torch_reflect_padding():
    """``mirror`` is what torch's reflect padding + the 2-D kernel give (anomalib's blur)."""
    rng = np.random.default_rng(0)
    grid = rng.random((20, 20)).astype(np.float32)
    radius = 4
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k1 = torch.exp(-0.5 * t**2)
    k1 /= k1.sum()
    kernel = (k1[:, None] * k1[None, :]).float()[None, None]
    x = torch.nn.functional.pad(torch.from_numpy(grid)[None, None], [radius] * 4, mode="reflect")
    expected = torch.nn.functional.conv2d(x, kernel)[0, 0].numpy()
    np.testing.assert_allclose(
        smooth_map(grid, (20, 20), 1.0, border="mirror"), expected, atol=1e-6
    )
