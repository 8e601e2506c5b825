"""Causal-FiLM networks (METHODS §6.3): the weld process predicts the weld result.

The process side (video and audio tokens, modulated by the sensor context through FiLM, then
video queries attending to audio) is mapped by a noisy decoder onto the result side (the
post-weld photos' embedding). Trained on normal runs only, the prediction error is the anomaly
score: a defect shows as a result the process did not lead one to expect.

Result embedding per run: each photo view is GeM-pooled per backbone tap, the taps are fused by
a learned softmax gate into one vector, and the views are averaged (a run's photos show the same
seam from several angles, so their mean is a stable target; the max over views would make the
target follow whichever view is most unusual, which is the score's job, not the target's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from iadbench.methods.causal_film.mamba import SelectiveScanBlock
from iadbench.methods.causal_film.params import CausalFilmParams

GEM_EPS = 1e-6


def last_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, T, d)`` -> ``(B, d)``: each sequence's token at ``length - 1``."""
    index = (lengths.to(x.device) - 1).clamp_min(0)
    return x[torch.arange(x.shape[0], device=x.device), index]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``x`` ``(B, N, ...)`` where ``mask`` ``(B, N)`` is True."""
    weights = mask.to(x.dtype)
    while weights.ndim < x.ndim:
        weights = weights.unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class SensorEncoder(nn.Module):
    """Sensor series ``(B, T, channels)`` -> context ``(B, dim)`` from the last real step.

    ``gru``: one GRU layer; ``mamba``: a linear lift and one selective-scan block. Both are
    causal, so right padding never reaches the last real step.
    """

    def __init__(self, channels: int, dim: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "gru":
            self.rnn = nn.GRU(channels, dim, batch_first=True)
        elif kind == "mamba":
            self.lift = nn.Linear(channels, dim)
            self.block = SelectiveScanBlock(dim)
            self.norm = nn.LayerNorm(dim)
        else:
            raise ValueError(f"unknown sensor encoder {kind!r} (gru or mamba)")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.kind == "gru":
            out, _ = self.rnn(x)
        else:
            out = self.norm(self.block(self.lift(x)))
        return last_valid(out, lengths)


class Film(nn.Module):
    """``F·(1 + γ') + β`` with ``(γ', β)`` a linear map of the context, zero-initialised so the
    modulation starts as the identity and the sensors only bend what the data asks for."""

    def __init__(self, context: int, dim: int) -> None:
        super().__init__()
        self.to_params = nn.Linear(context, 2 * dim)
        nn.init.zeros_(self.to_params.weight)
        nn.init.zeros_(self.to_params.bias)

    def forward(self, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.to_params(context).unsqueeze(1).chunk(2, dim=-1)
        return tokens * (1.0 + gamma) + beta


def projection(dim_in: int, dim: int) -> nn.Sequential:
    """Frozen-encoder features -> the model width (the reference's MLP projection)."""
    return nn.Sequential(
        nn.LayerNorm(dim_in), nn.Linear(dim_in, dim), nn.GELU(), nn.Linear(dim, dim)
    )


class ProcessEncoder(nn.Module):
    """Sensor-modulated video queries attend to audio keys; mean over video tokens -> Z_process."""

    def __init__(
        self, video_dim: int, audio_dim: int, sensor_channels: int, p: CausalFilmParams
    ) -> None:
        super().__init__()
        d = int(p.d_model)
        self.sensor = SensorEncoder(sensor_channels, int(p.sensor_dim), p.sensor_encoder)
        self.video = projection(video_dim, d)
        self.audio = projection(audio_dim, d)
        self.film_video = Film(int(p.sensor_dim), d)
        self.film_audio = Film(int(p.sensor_dim), d)
        layer = nn.TransformerDecoderLayer(d, int(p.heads), 4 * d, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, int(p.layers))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        context = self.sensor(batch["sensor"], batch["sensor_len"])
        video = self.film_video(self.video(batch["video"]), context)
        audio = self.film_audio(self.audio(batch["audio"]), context)
        fused = self.decoder(
            video,
            audio,
            tgt_key_padding_mask=~batch["video_mask"],
            memory_key_padding_mask=~batch["audio_mask"],
        )
        return masked_mean(fused, batch["video_mask"])


class Gem(nn.Module):
    """Generalised mean over tokens, ``(mean x^p)^(1/p)`` with a learnable ``p`` (init 3);
    p = 1 is the mean, large p approaches the max. Inputs are clamped at a small positive eps."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp_min(1.0)
        return x.clamp_min(GEM_EPS).pow(p).mean(-2).pow(1.0 / p)


class ResultEncoder(nn.Module):
    """Photo views ``(B, V, tokens, sum(layer_dims))`` -> Z_result ``(B, d_model)``.

    Per tap block: GeM over tokens and a linear map to ``d_model``; a softmax gate over the
    taps (computed from all of them) mixes them; the views are averaged (module docstring).
    """

    def __init__(self, layer_dims: Sequence[int], d_model: int, gem_p: float) -> None:
        super().__init__()
        self.layer_dims = [int(d) for d in layer_dims]
        self.pools = nn.ModuleList(Gem(gem_p) for _ in self.layer_dims)
        self.maps = nn.ModuleList(nn.Linear(d, d_model) for d in self.layer_dims)
        self.gate = nn.Linear(len(self.layer_dims) * d_model, len(self.layer_dims))

    def forward(self, photos: torch.Tensor, view_mask: torch.Tensor) -> torch.Tensor:
        blocks = photos.split(self.layer_dims, dim=-1)
        taps = [m(pool(b)) for b, pool, m in zip(blocks, self.pools, self.maps, strict=True)]
        stacked = torch.stack(taps, dim=-2)  # (B, V, taps, d)
        weights = self.gate(torch.cat(taps, dim=-1)).softmax(-1).unsqueeze(-1)
        return masked_mean((weights * stacked).sum(-2), view_mask)


class CausalFilmNet(nn.Module):
    """Batch dict -> ``(Z_result, Ẑ)``, both ``(B, d_model)``.

    ``text_dim``: the CLIP embedding width of the text anchor; ``to_text`` then maps Ẑ into that
    space for the anchor loss (built last, so the other layers' seeded initialisation is the same
    with or without it).
    """

    def __init__(
        self,
        dims: dict[str, int],
        layer_dims: Sequence[int],
        p: CausalFilmParams,
        text_dim: int | None = None,
    ) -> None:
        super().__init__()
        d = int(p.d_model)
        self.process = ProcessEncoder(dims["video"], dims["audio"], dims["sensor"], p)
        self.result = ResultEncoder(layer_dims, d, float(p.gem_p))
        self.predict = nn.Sequential(
            nn.Linear(d, d), nn.GELU(), nn.Dropout(float(p.decoder_dropout)), nn.Linear(d, d)
        )
        self.to_text = nn.Linear(d, int(text_dim)) if text_dim else None

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        z_hat = self.predict(self.process(batch))
        return self.result(batch["photo"], batch["photo_mask"]), z_hat


def gram_distance(z: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
    """``‖G(Z) − G(Ẑ)‖_F / B`` with G the batch's cosine-similarity matrix: the prediction must
    keep how runs relate to each other, not only each run's own direction."""
    zn, hn = F.normalize(z, dim=-1), F.normalize(z_hat, dim=-1)
    return torch.linalg.matrix_norm(zn @ zn.T - hn @ hn.T) / z.shape[0]


def film_loss(
    z: torch.Tensor, z_hat: torch.Tensor, l1_weight: float, gram_weight: float
) -> dict[str, torch.Tensor]:
    """``(1 − cos) + w_l1·L1 + w_gram·Gram`` averaged over the batch, with its parts."""
    cos = (1.0 - F.cosine_similarity(z, z_hat, dim=-1)).mean()
    l1 = (z - z_hat).abs().mean()
    gram = gram_distance(z, z_hat)
    return {"loss": cos + l1_weight * l1 + gram_weight * gram, "cos": cos, "l1": l1, "gram": gram}


def text_anchor_distance(projected: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """``1 − cos(W·Ẑ, t)`` averaged over the batch: every prediction is pulled towards the
    prompt's embedding (``anchor``, ``(D,)``), a prior on what a normal result looks like."""
    return (1.0 - F.cosine_similarity(projected, anchor.unsqueeze(0), dim=-1)).mean()


def film_score(z: torch.Tensor, z_hat: torch.Tensor, weight: float, top_k: float) -> torch.Tensor:
    """Per run: ``(1 − cos) + weight · mean of the top ``top_k`` fraction of |Z − Ẑ|``."""
    err = (z - z_hat).abs()
    k = max(1, round(top_k * err.shape[-1]))
    top = err.topk(k, dim=-1).values.mean(-1)
    return 1.0 - F.cosine_similarity(z, z_hat, dim=-1) + weight * top
