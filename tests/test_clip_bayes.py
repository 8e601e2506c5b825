"""Fixed-prompt Monte Carlo sampling (METHODS §12.2) and the residual fusion (§12.3b) on the tiny
random CLIP: where the noise enters, seeding, sigma 0, the statistics and the fusion's ends.
"""

import math
from functools import partial

import pytest
import torch

from iadbench.clip.encoder import load_clip, prototypes, text_prototypes
from iadbench.errors import ConfigError
from iadbench.methods.crane import bayes
from iadbench.methods.crane import refined as crane

NORMAL = ["a photo of a flawless bottle", "a bottle", "a perfect bottle"]
ANOMALOUS = ["a photo of a damaged bottle", "a bottle with a defect"]


@pytest.fixture(scope="module")
def tiny():
    return load_clip("clip_tiny", "random", seed=0)


@pytest.fixture(scope="module")
def score_fn(tiny):
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    outputs = crane.crane_tokens(tiny, images)
    return partial(crane.crane_scores, outputs, size=(64, 64), image_score_mode="pooled")


def test_clean_token_embeddings_encode_exactly_as_encode_text(tiny):
    tokens, emb = tiny.embed_text(NORMAL)
    assert tokens.shape == (3, 77) and emb.shape == (3, 77, 64)
    assert torch.equal(tiny.encode_text_embeddings(tokens, emb), tiny.encode_text(NORMAL))


def test_noise_is_added_to_every_prompts_token_embeddings_before_the_text_transformer(tiny):
    sigma, seed = 0.05, 7
    got = bayes.noisy_prototypes(tiny, NORMAL, ANOMALOUS, samples=2, sigma=sigma, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    expected = []
    for _ in range(2):
        encoded = []
        for sentences in (NORMAL, ANOMALOUS):
            tokens, emb = tiny.embed_text(sentences)
            noisy = emb + sigma * torch.randn(emb.shape, generator=generator)
            encoded.append(tiny.encode_text_embeddings(tokens, noisy))
        expected.append(prototypes(*encoded))
    assert got.shape == (2, 2, 32)
    assert torch.allclose(got, torch.stack(expected), atol=1e-6)


def test_same_seed_same_samples_other_seed_other_samples(tiny):
    a = bayes.noisy_prototypes(tiny, NORMAL, ANOMALOUS, samples=2, sigma=0.01, seed=1)
    b = bayes.noisy_prototypes(tiny, NORMAL, ANOMALOUS, samples=2, sigma=0.01, seed=1)
    c = bayes.noisy_prototypes(tiny, NORMAL, ANOMALOUS, samples=2, sigma=0.01, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # samples differ from each other
    clean = text_prototypes(tiny, NORMAL, ANOMALOUS)
    assert 0 < float((a - clean).abs().max()) < 0.5  # small noise, small change


def test_sigma_zero_scores_once_with_the_clean_prototypes_and_zero_std(tiny, score_fn):
    calls = []

    def recording(protos):
        calls.append(protos)
        return score_fn(protos)

    out = bayes.bayes_outputs(recording, tiny, NORMAL, ANOMALOUS, samples=3, sigma=0.0, seed=5)
    hand = []  # unit sentence embeddings, their mean, renormalised (APRIL-GAN's prototypes)
    for sentences in (NORMAL, ANOMALOUS):
        emb = tiny.encode_text(sentences)
        mean = (emb / emb.norm(dim=-1, keepdim=True)).mean(0)
        hand.append(mean / mean.norm())
    assert len(calls) == 1 and calls[0].shape == (2, 32)
    assert torch.allclose(calls[0], torch.stack(hand), atol=1e-6)
    scores, maps = score_fn(calls[0])
    assert torch.equal(out.scores, scores) and torch.equal(out.maps, maps)
    assert torch.equal(out.score_std, torch.zeros(2))
    assert torch.equal(out.map_std, torch.zeros(2, 64, 64))
    assert torch.equal(out.mean_map_std, torch.zeros(2))


def test_sampling_is_alive_and_reproducible(tiny, score_fn):
    run = partial(bayes.bayes_outputs, score_fn, tiny, NORMAL, ANOMALOUS, samples=3, sigma=0.05)
    a, b, c = run(seed=0), run(seed=0), run(seed=1)
    assert a.samples == 3 and a.scores.shape == (2,) and a.maps.shape == (2, 64, 64)
    assert torch.equal(a.scores, b.scores) and torch.equal(a.map_std, b.map_std)
    assert not torch.equal(a.scores, c.scores)
    assert bool((a.score_std > 0).all()) and bool((a.mean_map_std > 0).all())
    assert float(a.maps.min()) >= 0.0 and float(a.maps.max()) <= 1.0


def test_mean_and_std_over_samples():
    def fake(protos):  # score = first entry, map = second entry everywhere
        return protos[0, :1].expand(1), protos[0, 1].expand(1, 2, 2)

    draws = torch.tensor([[[1.0, 10.0]], [[2.0, 20.0]], [[6.0, 30.0]]])
    out = bayes.sample_outputs(fake, draws)
    assert out.scores.item() == pytest.approx(3.0) and out.maps[0, 0, 0].item() == pytest.approx(20)
    assert out.score_std.item() == pytest.approx(math.sqrt((4 + 1 + 9) / 2))  # Bessel's
    assert out.map_std[0, 1, 1].item() == pytest.approx(10.0)
    population = bayes.sample_outputs(fake, draws, correction=0)
    assert population.score_std.item() == pytest.approx(math.sqrt(14 / 3))
    with pytest.raises(ConfigError, match="1 samples give no std"):
        bayes.sample_outputs(fake, draws[:1])


def test_fusion_ends_are_exact():
    det = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(0))
    bay = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(bayes.fuse(det, bay, 0.0), det)
    assert torch.equal(bayes.fuse(det, bay, 1.0), bay)
    assert torch.allclose(bayes.fuse(det, bay, 0.5), (det + bay) / 2)
    with pytest.raises(ConfigError, match="alpha"):
        bayes.fuse(det, bay, 1.5)


def test_sigma_from_init_logstd():
    assert bayes.bayes_sigma() == 0.001
    assert bayes.bayes_sigma(init_logstd=-6.907755) == pytest.approx(0.001, rel=1e-6)
    assert bayes.bayes_sigma(sigma=0.0) == 0.0
    with pytest.raises(ConfigError, match="not both"):
        bayes.bayes_sigma(sigma=0.01, init_logstd=-3.0)
    with pytest.raises(ConfigError, match=">= 0"):
        bayes.bayes_sigma(sigma=-0.1)
