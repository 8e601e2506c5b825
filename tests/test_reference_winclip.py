"""WinCLIP against stored outputs of anomalib 2.7.0's ``WinClipModel`` at equal random weights.

``tests/fixtures/reference/winclip.{npz,json}`` were written by
``benchmarks/compare_reference.py --methods winclip --write-fixture`` (anomalib is too heavy for
CI): anomalib's own arch (ViT-B-16-plus-240, which its WinClipModel hard-codes) with random
weights from the JSON's seed, its window pass corrected (anomalib #2571), its prompt ensemble
reduced to one template (stored in the JSON), two demo images and one reference through its
pre-processing. Here only our side runs, zero-shot and 1-shot from one pass over the images,
with the switches that reproduce anomalib (raw-embedding prototypes, image score in the mean).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "winclip"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference.common import load_fixture  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    return load_fixture("winclip")


def test_winclip_equals_anomalib_fixture(reference):
    from reference.winclip import anomalib_input

    from iadbench.clip.encoder import load_clip, prototypes
    from iadbench.clip.prompts import sentences
    from iadbench.clip.scoring import upsample
    from iadbench.methods.winclip.windows import (
        combine_few_shot,
        encode_window_sets,
        few_shot_map,
        reference_memory,
        window_indices,
        zero_shot,
    )

    meta, ref = reference
    torch.set_num_threads(2)
    encoder = load_clip(meta["backbone"], "random", seed=int(meta["seed"]))
    normal, anomalous = sentences(meta["prompts"], meta["class_name"])
    assert (len(normal), len(anomalous)) == (7, 4)
    with torch.no_grad():
        protos = prototypes(encoder.encode_text(normal), encoder.encode_text(anomalous), False)
        sizes = (2, 3)
        index = [window_indices(encoder.grid, k) for k in sizes]
        test = anomalib_input(list(ref["test"]))
        out = encoder.encode_image(test, [-1], "ln_post")
        windows = encode_window_sets(encoder, iter([test]), sizes)
        embeddings = [torch.from_numpy(windows[f"w{k}"]) for k in sizes]
        z_scores, z_maps = zero_shot(out.cls, embeddings, index, protos, encoder.grid, 0.07, True)
        refs = anomalib_input(list(ref["train"][:1]))
        r_windows = encode_window_sets(encoder, iter([refs]), sizes)
        memory = reference_memory(
            encoder.encode_image(refs, [-1], "ln_post").patches[0],
            [torch.from_numpy(r_windows[f"w{k}"]) for k in sizes],
        )
        f_scores, f_maps = combine_few_shot(
            z_maps, z_scores, few_shot_map(out.patches[0], embeddings, index, memory)
        )
    step = int(meta["map_step"])
    for k, (scores, maps) in ((0, (z_scores, z_maps)), (1, (f_scores, f_maps))):
        full = upsample(maps, tuple(test.shape[-2:])).numpy()[:, ::step, ::step]
        assert full.shape == ref[f"shot{k}_maps"].shape == (2, 240 // step, 240 // step)
        assert np.abs(scores.numpy() - ref[f"shot{k}_scores"]).max() <= TOL, k
        assert np.abs(full - ref[f"shot{k}_maps"]).max() <= TOL, k
    # the 1-shot reference changes the result: the fixture checks the few-shot branch too
    assert np.abs(ref["shot1_scores"] - ref["shot0_scores"]).max() > 1e-3
