"""AnomalyDINO against stored outputs of anomalib 2.7.0's ``AnomalyDINOModel`` at equal weights.

``tests/fixtures/reference/anomalydino.{npz,json}`` were written by
``benchmarks/compare_reference.py --methods anomalydino --write-fixture`` (anomalib is too heavy
for CI): its scores and maps on two 64 px demo images with one reference, on the tiny random
``dinov2_tiny`` ViT (2 blocks of width 32) that the recorded seed rebuilds. Here only our side
runs, through the harness's input path, with anomalib's map switches (nearest upsampling, mirror
blur border, no rotation) and our default position-grid resampling (bicubic, no antialias).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "anomalydino"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference.common import load_fixture  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    return load_fixture("anomalydino")


def ours(meta, ref, masking: bool, interpolation: str | None = None):
    from reference.anomalydino import fixture_config, fixture_outputs

    torch.set_num_threads(2)
    cfg = fixture_config(meta["seed"], interpolation)
    backbone = cfg.load_backbone(torch.device("cpu"))
    scores, maps = fixture_outputs(backbone, cfg, list(ref["refs"]), list(ref["test"]), masking)
    step = meta["map_step"]
    return scores, maps[:, ::step, ::step]


def test_anomalydino_equals_anomalib_fixture(reference):
    meta, ref = reference
    setting = "anomalib map"
    key = setting.replace(", ", "_").replace(" ", "_")
    scores, maps = ours(meta, ref, meta["settings"][setting]["masking"])
    assert maps.shape == ref[f"{key}_maps"].shape == (2, 56, 56)
    assert np.abs(scores - ref[f"{key}_scores"]).max() <= TOL
    assert np.abs(maps - ref[f"{key}_maps"]).max() <= TOL
    assert ref[f"{key}_maps"].max() > 0  # not a degenerate all-zero map


def test_the_switches_matter(reference):
    """timm's antialiased position-grid resampling (``interpolation: bicubic_antialias``, what
    the pipeline ran before) lands away from anomalib on this 16x16 -> 8x8 grid."""
    meta, ref = reference
    scores, maps = ours(meta, ref, False, "bicubic_antialias")
    assert np.abs(maps - ref["anomalib_map_maps"]).max() > 10 * TOL
