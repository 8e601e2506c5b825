"""Dinomaly against stored outputs of anomalib 2.7.0's ``DinomalyModel`` at equal weights.

``tests/fixtures/reference/dinomaly.{npz,json}`` were written by ``compare_reference.py
--methods dinomaly --dinomaly-arch tiny --write-fixture`` (anomalib is too heavy for CI): its
image scores and smoothed 256 px maps (every 4th pixel) on two 64 px demo images, with
the tiny random encoder (``dinov2_tiny_reg4``) and decoder that ``our_net("tiny", seed)``
rebuilds. Here only our side runs, with the switches the JSON records (``mlp_bias: false``,
``smooth_padding: reflect``): a wrong fusion, tap, attention, position-grid resampling or map
step moves the maps far beyond the tolerance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "dinomaly"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference.common import load_fixture  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    return load_fixture("dinomaly")


@pytest.fixture(scope="module")
def outputs(reference):
    """Our net and its input tensor, rebuilt from the recorded seed."""
    from reference.dinomaly import FIXTURE as F
    from reference.dinomaly import inputs, our_net

    meta, ref = reference
    torch.set_num_threads(2)
    net, mean, std = our_net("tiny", meta["seed"])
    return net, inputs(list(ref["test"]), F["resize"], F["crop"], mean, std)


def test_dinomaly_equals_anomalib_fixture(reference, outputs):
    from reference.dinomaly import run_ours

    meta, ref = reference
    net, x = outputs
    scores, maps, _ = run_ours(net, x, meta["switches"]["smooth_padding"])
    step = meta["map_step"]
    assert maps.shape == (2, 256, 256) and ref["maps"].shape == (2, 64, 64)
    assert np.abs(scores - ref["scores"]).max() <= TOL
    assert np.abs(maps[:, ::step, ::step] - ref["maps"]).max() <= TOL
    assert ref["scores"].min() > 0  # 1 - cosine of a random decoder: not degenerate


def test_the_switches_matter(reference, outputs):
    """The paper's zero-padded smoothing (``smooth_padding: zeros``) lands away from anomalib's
    reflect-padded blur at the border."""
    from reference.dinomaly import run_ours

    meta, ref = reference
    net, x = outputs
    _, maps, _ = run_ours(net, x, "zeros")
    step = meta["map_step"]
    assert np.abs(maps[:, ::step, ::step] - ref["maps"]).max() > 100 * TOL
