"""Fixed-prompt Monte Carlo sampling (METHODS §12.2) and the residual fusion (§12.3b).

No trained flow (unlike Bayes-PFL, §4.2): every prompt's token embeddings get Gaussian noise
ε ~ N(0, σ²) before the text transformer, R times; each sample gives (2, D) prototypes, and a
caller's ``score_fn(prototypes) -> (scores (B,), maps (B, H, W))`` turns them into outputs on
visual tokens computed once. The Bayes output is the mean over samples, with the per-image score
std and per-pixel map std kept as uncertainty. Noise comes from a seeded CPU generator, so a seed
gives the same samples on any device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from iadbench.clip.encoder import ClipEncoder, prototypes, text_prototypes
from iadbench.errors import ConfigError
from iadbench.methods.crane.params import BAYES_SAMPLES as SAMPLES
from iadbench.methods.crane.params import BAYES_SIGMA as SIGMA
from iadbench.methods.crane.params import bayes_sigma

SEED = 0

ScoreFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def noisy_prototypes(
    encoder: ClipEncoder,
    normal: Sequence[str],
    anomalous: Sequence[str],
    samples: int = SAMPLES,
    sigma: float = SIGMA,
    seed: int = SEED,
    normalize_each: bool = True,
) -> torch.Tensor:
    """(R, 2, D) unit prototypes, one pair per sample of noisy token embeddings.

    Per sample, noise of the shape of the normal prompts' (N_n, L, width) embeddings is drawn,
    then that of the anomalous prompts', in that order, from one generator seeded with ``seed``.
    Every position gets noise; those after the end-of-text token cannot change the pooled output
    (causal mask). Prototypes follow ``encoder.prototypes`` (``normalize_each`` as there).
    """
    if samples < 1:
        raise ConfigError(f"bayes: samples {samples} must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    clean = [encoder.embed_text(normal), encoder.embed_text(anomalous)]
    out = []
    for _ in range(samples):
        encoded = []
        for tokens, emb in clean:
            noise = torch.randn(emb.shape, generator=generator, dtype=torch.float32) * sigma
            encoded.append(encoder.encode_text_embeddings(tokens, emb + noise.to(emb)))
        out.append(prototypes(*encoded, normalize_each=normalize_each))
    return torch.stack(out)


@dataclass(frozen=True)
class BayesOutput:
    """Mean outputs over the samples and their spread."""

    scores: torch.Tensor  # (B,)
    maps: torch.Tensor  # (B, H, W)
    score_std: torch.Tensor  # (B,)
    map_std: torch.Tensor  # (B, H, W)
    samples: int  # R as asked (sigma 0 runs the deterministic path once)

    @property
    def mean_map_std(self) -> torch.Tensor:
        """(B,) each image's mean per-pixel std (the variance analysis' map column)."""
        return self.map_std.mean(dim=(-2, -1))


def sample_outputs(
    score_fn: ScoreFn, prototype_samples: torch.Tensor, correction: int = 1
) -> BayesOutput:
    """Run ``score_fn`` on each of the (R, 2, D) samples; mean and std over R.

    Ambiguous: which std; ``correction = 1`` (torch's default, Bessel's) or 0 (numpy's).
    """
    count = len(prototype_samples)
    if count <= correction:
        raise ConfigError(f"bayes: {count} samples give no std with correction {correction}")
    scores, maps = zip(*(score_fn(p) for p in prototype_samples))
    scores, maps = torch.stack(scores), torch.stack(maps)
    return BayesOutput(
        scores=scores.mean(0),
        maps=maps.mean(0),
        score_std=scores.std(0, correction=correction),
        map_std=maps.std(0, correction=correction),
        samples=count,
    )


def bayes_outputs(
    score_fn: ScoreFn,
    encoder: ClipEncoder,
    normal: Sequence[str],
    anomalous: Sequence[str],
    samples: int = SAMPLES,
    sigma: float = SIGMA,
    seed: int = SEED,
    normalize_each: bool = True,
    correction: int = 1,
) -> BayesOutput:
    """The Bayes path. ``sigma = 0`` short-circuits to the deterministic prototypes (the plain
    ``encode_text``) run once, with a std of exactly zero: averaging R equal samples would not
    always give back the same floats.
    """
    if samples < 1:
        raise ConfigError(f"bayes: samples {samples} must be >= 1")
    if bayes_sigma(sigma) == 0:
        scores, maps = score_fn(text_prototypes(encoder, normal, anomalous, normalize_each))
        return BayesOutput(
            scores, maps, torch.zeros_like(scores), torch.zeros_like(maps), samples=samples
        )
    draws = noisy_prototypes(encoder, normal, anomalous, samples, sigma, seed, normalize_each)
    return sample_outputs(score_fn, draws, correction)


def fuse(deterministic: torch.Tensor, bayes: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1 − α)·deterministic + α·bayes`` (maps or scores). With finite inputs α = 0 returns
    the deterministic values and α = 1 the Bayes ones bit for bit (x·1 + y·0 = x exactly).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"fusion alpha {alpha} is not in [0, 1]")
    return (1.0 - alpha) * deterministic + alpha * bayes
