"""PaDiM against stored outputs of anomalib 2.7.0's ``PadimModel`` at equal weights.

``tests/fixtures/reference/padim.{npz,json}`` were written by
``benchmarks/compare_reference.py --methods padim --write-fixture``: anomalib was handed our
fitted Gaussians (its float32 ``torch.linalg.inv`` is the one documented difference), so its
Mahalanobis distances, bilinear upsampling, blur (torch reflect = our ``blur_border: mirror``)
and max are compared with ours. Only our side runs here, on the stored images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "padim"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference.common import load_fixture  # noqa: E402

# Mahalanobis distances of a 4-image fit are ~1e2-1e3: float32 rounding is relative
RTOL = 1e-5


@pytest.fixture(scope="module")
def reference():
    return load_fixture("padim")


def test_padim_equals_anomalib_fixture(reference):
    from reference.lite0 import input_tensor, load_ours, run_ours

    meta, ref = reference
    torch.set_num_threads(2)
    cfg = meta["settings"]["our Gaussians"]
    assert cfg["epsilon"] == pytest.approx(0.01 + 1e-5) and cfg["blur_border"] == "mirror"
    backbone = load_ours("padim")
    size = ref["test"].shape[1]
    train_x = input_tensor(list(ref["train"]), size, backbone.preprocessing)
    test_x = input_tensor(list(ref["test"]), size, backbone.preprocessing)
    scores, maps, _, state = run_ours(cfg, backbone, train_x, test_x, "padim")
    assert state["mean"].shape == (size // 4, size // 4, 100)  # stride-4 grid, 100 channels
    r_scores, r_maps = ref["our_Gaussians_scores"], ref["our_Gaussians_maps"]
    assert maps.shape == r_maps.shape == (2, size, size)
    np.testing.assert_allclose(scores, r_scores, rtol=RTOL)
    assert np.abs(maps - r_maps).max() <= RTOL * np.abs(r_maps).max()
    assert r_scores[1] > r_scores[0] > 0
