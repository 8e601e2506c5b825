"""Late fusion against stored outputs of the bluuueheart/Weld-Anomaly-Detection
reimplementation (``baselines/Late_Fusion`` @57b310f) at equal weights.

``tests/fixtures/reference/late_fusion.{npz,json}`` were written by
``benchmarks/compare_reference.py --methods late_fusion --weld-repo PATH --write-fixture``: their
``AudioAutoEncoder`` / ``VideoAutoEncoder`` were handed our random weights (regenerated here from
the seed) and scored the stored per-frame features with their aggregation (mean; max of the
2-s moving average), TRAIN z-scoring (``std + 1e-8``) and fusion at w 0.37. Only our side runs
here, with the switches that reproduce their architecture (``audio_padding: same``,
``audio_leaky_slope: 0.2``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "late_fusion"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference.common import load_fixture  # noqa: E402

# float32 frame errors: their float32 means vs our float64 sums, z-scores of magnitude <= 10
ATOL = 1e-5


@pytest.fixture(scope="module")
def reference():
    meta, arrays = load_fixture("late_fusion")
    runs = {}
    for key in ("train_audio", "train_video", "test_audio", "test_video"):
        n = meta["n_runs"][key.split("_")[0]]
        runs[key] = [arrays[f"{key}_{i}"] for i in range(n)]
    return meta, runs, arrays


def test_late_fusion_equals_reimplementation_fixture(reference):
    from reference.late_fusion import build_ours, score_ours, train_step_losses

    from iadbench.methods.late_fusion.method import best_weight

    meta, runs, ref = reference
    torch.set_num_threads(2)
    assert meta["our_config"]["audio_padding"] == "same"
    assert meta["our_config"]["audio_leaky_slope"] == 0.2
    method, nets = build_ours(meta["setting"], meta["weights_seed"])
    assert method.params.audio_padding == "same"
    ours = score_ours(method, nets, runs)
    for key in ("raw_audio", "raw_video", "z_audio", "z_video", "fused"):
        np.testing.assert_allclose(ours[key], ref[f"ref_{key}"], atol=ATOL, rtol=0, err_msg=key)
    labels = ref["test_labels_0"]
    assert best_weight(labels, ours["z_audio"], ours["z_video"])[0] == pytest.approx(ref["w"][0])
    steps = train_step_losses(nets, runs, True, meta["weights_seed"])
    np.testing.assert_allclose(steps, ref["steps"], rtol=1e-5)
    assert steps[1] < steps[0] and steps[3] < steps[2]  # one Adam step lowers each loss
    # the fixture's anomalies are visible: the fused score ranks some anomalous run first
    assert labels[int(np.argmax(ref["ref_fused"]))] == 1
