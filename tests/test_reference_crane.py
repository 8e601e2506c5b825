"""Crane against stored outputs of the authors' code (AlirezaSalehy/Crane) at equal random weights.

``tests/fixtures/reference/crane.{npz,json}`` were written by ``benchmarks/compare_reference.py
--methods crane --crane-write-fixture`` from their code (their ``build_model``,
``replace_with_EAttn``, ``test.ScoreCalculator`` with ``ScoreBasePooling``, their per-map
``gaussian_filter`` and, for Crane+, their D-Attn fed by our random DINOv2). Here only our side
runs, through the ``crane`` kind: the same random CLIP (``clip_vit_b32``, seed from the JSON),
the demo images the JSON names at 224 px with Crane's normalisation, the kind's cached view
(``encode_crane``) and ``Crane.score`` with the switches that reproduce their code. The maps are
compared at every ``map_stride``-th pixel, as stored.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from iadbench.clip.encoder import load_clip
from iadbench.clip.prompts import sentences
from iadbench.data.demo import make_defect_sample, make_normal_sample
from iadbench.methods.base import MethodInputs
from iadbench.methods.crane.method import Crane
from iadbench.methods.crane.views import encode_crane, load_guide
from iadbench.methods.kinds import params_of

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "crane"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference.common import load_fixture  # noqa: E402

TOL = 1e-4
# Crane's transform: ToTensor + OpenAI CLIP mean/std (the images are already 224 px, so its
# bicubic resize is the identity).
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def reference():
    return load_fixture("crane")


@pytest.fixture(scope="module")
def encoder(reference):
    torch.set_num_threads(2)
    meta, _ = reference
    return load_clip(meta["backbone"], "random", seed=int(meta["weights_seed"]))


def demo_image(category: str, name: str, size: int) -> np.ndarray:
    """``good/003`` or ``<defect>/005``: the demo test image the harness used."""
    kind, index = name.split("/")
    if kind == "good":
        return make_normal_sample(category, "test", int(index), image_size=size)
    return make_defect_sample(category, kind, int(index), image_size=size)[1]


def batch_of(images) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def entry(meta: dict, setting: dict) -> dict:
    """The crane entry whose switches reproduce the reference's setting (its sentences, a
    ``prompt_sets`` mapping in a config, come in as the cached text embeddings)."""
    soft = bool(setting["soft_mean"])
    out = {
        "kind": "crane",
        "backbone": "b32",
        "class_name": meta["class_name"],
        "taps": setting["ours"],
        "soft_mean": soft,
        "upsample_logits": not soft,
        "image_score_mode": "pooled" if setting["pooling"] else "cls",
        "bayes": {"samples": 0},
        "fusion_alpha": 0,
    }
    if setting.get("dino"):
        out.update(dino="guide", dattn_input=setting.get("dattn_input", "attention"))
    return out


def our_outputs(encoder, meta: dict, setting: dict, category: str, names: list[str]):
    """Scores and full maps of the crane kind on the named images (no Snakemake)."""
    size = int(meta["image_size"])
    backbones = {
        "b32": {"model": meta["backbone"], "weights": "random", "seed": meta["weights_seed"]},
        "guide": {"model": meta["dino"], "weights": "random", "seed": meta["weights_seed"]},
    }
    cfg = entry(meta, setting)
    params = params_of(cfg)
    _, options = params.visual_view(meta["backbone"], backbones)
    guide = load_guide(options["dino"], "cpu") if options["dino"] else None
    batch = batch_of([demo_image(category, n, size) for n in names])
    arrays, sources = encode_crane(encoder, iter([batch]), options, guide)
    normal, anomalous = sentences(meta["prompts"], meta["class_name"])
    identity = {"model": meta["backbone"], "weights": "random", "options": options, "guide": None}
    cached = {
        "visual": {**arrays, "meta": {"identity": identity, "sources": sources}},
        "text": {
            "normal": encoder.encode_text(normal).numpy(),
            "anomalous": encoder.encode_text(anomalous).numpy(),
            "normal_sentences": np.array(normal),
            "anomalous_sentences": np.array(anomalous),
            "meta": {"class_name": meta["class_name"]},
        },
    }
    method = Crane(cfg, device="cpu")
    inputs = MethodInputs(pd.DataFrame(index=range(len(names))), cached=cached)
    scores, maps, _ = method.score(None, inputs, (size, size))
    return scores, maps


def test_fixture_is_small_and_says_how_it_was_made(reference):
    meta, arrays = reference
    assert FIXTURE.with_suffix(".npz").stat().st_size <= 300_000
    assert meta["reference"] == "https://github.com/AlirezaSalehy/Crane"
    assert meta["backbone"] == "clip_vit_b32" and meta["image_size"] == 224
    assert set(meta["settings"]) == {key.split("/")[1] for key in meta["names"]}
    for key in meta["names"]:
        assert arrays[f"{key}/scores"].shape == (len(meta["names"][key]),)


@pytest.mark.parametrize(
    "name",
    [
        "test.py defaults",
        "4 taps, soft mean",
        "4 taps, CLS score",
        "Crane+ D-Attn, test.py defaults",
    ],
)
def test_our_crane_equals_the_reference(reference, encoder, name):
    meta, ref = reference
    setting = meta["settings"][name]
    for category in meta["categories"]:
        key = f"{category}/{name}"
        scores, maps = our_outputs(encoder, meta, setting, category, meta["names"][key])
        stride = int(meta["map_stride"])
        np.testing.assert_allclose(scores, ref[f"{key}/scores"], rtol=0, atol=TOL)
        np.testing.assert_allclose(
            maps[:, ::stride, ::stride], ref[f"{key}/maps"], rtol=0, atol=TOL
        )


def test_the_switches_matter(reference, encoder):
    """The switches are what makes the match: on the same images, the kind's defaults (the
    probability map upsampled from the patch grid; 4 distinct taps, which Crane's in-place
    stream update collapses into the last one) land away from Crane's code."""
    meta, ref = reference
    category = meta["categories"][0]
    stride = int(meta["map_stride"])
    for name, change, gap in (
        ("test.py defaults", {"soft_mean": True}, TOL),
        ("4 taps, soft mean", {"ours": None}, 100 * TOL),
    ):
        key = f"{category}/{name}"
        setting = {**meta["settings"][name], **change}
        _, maps = our_outputs(encoder, meta, setting, category, meta["names"][key])
        assert np.abs(maps[:, ::stride, ::stride] - ref[f"{key}/maps"]).max() > gap


# --- ResCLIP's RCS -------------------------------------------------------------------------------


def test_rcs_equals_resclip(reference, encoder):
    """``crane_rcs.*``: ResCLIP's final-block attention output (a few tokens) and head 0's mixed
    weights, from their ``VisionTransformer.forward`` with RCS (``clearclip``: one ``qq`` term;
    ``sclip``: ``qq+kk``, which needs ``rcs.scale_by_terms: false``). Ours: the maths of
    :mod:`~iadbench.methods.crane.rcs` on our stream, then the kind's refined path with only the
    last block refined, whose tokens must be ``ln_post(x + their output) @ proj``."""
    from iadbench.methods.crane.params import rcs_layers
    from iadbench.methods.crane.rcs import Rcs, mean_attention, rcs_attention
    from iadbench.methods.crane.refined import (
        attend,
        attn_terms,
        crane_tokens,
        eattn_weights,
        project_qkv,
        standard_attention,
    )

    meta, _ = reference
    rcs_meta, ref = load_fixture("crane_rcs")
    assert rcs_meta["backbone"] == meta["backbone"]
    category = meta["categories"][0]
    names = meta["names"][f"{category}/test.py defaults"][: rcs_meta["n_images"]]
    batch = batch_of([demo_image(category, n, int(meta["image_size"])) for n in names])
    tokens = rcs_meta["tokens"]
    lam, tau = rcs_meta["lam"], rcs_meta["tau"]
    v = encoder.visual
    depth = len(v.transformer.resblocks)
    for name, setting in rcs_meta["settings"].items():
        terms = attn_terms(setting["attn_type"])
        n_terms = len(terms) if setting["scale_by_terms"] else 1
        with torch.no_grad():
            x = v.ln_pre(v.patch_dropout(encoder._embedded(batch)))
            cross = []
            for i, block in enumerate(v.transformer.resblocks):
                q, k, val = project_qkv(block.attn, block.ln_1(x))
                if i in rcs_layers(depth):
                    cross.append(standard_attention(q, k))
                if i == depth - 1:
                    weights = rcs_attention(
                        eattn_weights(q, k, val, terms), mean_attention(cross), lam, tau, n_terms
                    )
                    out = attend(block.attn, weights, val)
                else:
                    x = encoder.run_block(block, x)
            rcs = Rcs(lam, tau, None, setting["scale_by_terms"])
            kind = crane_tokens(
                encoder, batch, [-1], depth - 1, setting["attn_type"], rcs=rcs
            ).patches[0]
        their_out = torch.from_numpy(ref[f"{category}/{name}/output"])
        np.testing.assert_allclose(out[:, tokens].numpy(), their_out, rtol=0, atol=TOL)
        np.testing.assert_allclose(
            weights[:, 0].numpy(), ref[f"{category}/{name}/weights"], rtol=0, atol=TOL
        )
        patches = [t - 1 for t in tokens if t > 0]  # token 0 is the CLS
        with torch.no_grad():
            expected = encoder._project(x[:, [t + 1 for t in patches]] + their_out[:, 1:])
        np.testing.assert_allclose(
            kind.flatten(1, 2)[:, patches].numpy(), expected.numpy(), rtol=0, atol=TOL
        )


# --- Bayes-PFL's sampling ------------------------------------------------------------------------


def test_noisy_prototypes_equal_bayes_pfl_sampling():
    """``crane_bayes.*``: prototypes from noisy token embeddings drawn by Bayes-PFL's
    ``PFL.reparameterize`` (``eps * sqrt(var) + mu``, global RNG seeded, drawn in our order), so
    our seeded ``noisy_prototypes`` must give the same (R, 2, D) values; sigma = 0.1 makes the
    noise visible (the samples differ from each other)."""
    from iadbench.methods.crane.bayes import noisy_prototypes

    meta, ref = load_fixture("crane_bayes")
    tiny = load_clip(meta["backbone"], "random", seed=int(meta["weights_seed"]))
    for category, class_name in meta["class_names"].items():
        normal, anomalous = sentences(meta["prompts"], class_name)
        for sigma in meta["sigmas"]:
            ours = noisy_prototypes(
                tiny, normal, anomalous, int(meta["samples"]), sigma, int(meta["seed"])
            )
            theirs = ref[f"{category}/sigma {sigma:g}"]
            np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=TOL)
            if sigma >= 0.1:
                assert np.abs(theirs - theirs.mean(0)).max() > 10 * TOL
