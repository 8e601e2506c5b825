"""The Intel paper's two autoencoders (METHODS §6.3), with configurable widths.

Audio: ``BN1d -> Conv1d(k3)...`` down to a bottleneck and the mirror ``ConvTranspose1d`` stack
back, LeakyReLU everywhere but the last layer (PReLU). The convolutions are unpadded, so each
encoder layer trims one frame at each end and its transposed mirror restores it: the output has
the input's length and no frame is reconstructed from zero padding. Video: a per-frame FC
autoencoder with ReLU and dropout where the published network has it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

KERNEL = 3


class AudioAutoencoder(nn.Module):
    """``(B, bins, T) -> (B, bins, T)``; ``T`` must exceed ``2 · (len(widths) + 1)``."""

    def __init__(self, bins: int, widths: Sequence[int], bottleneck: int) -> None:
        super().__init__()
        sizes = [bins, *widths, bottleneck]
        encoder: list[nn.Module] = [nn.BatchNorm1d(bins)]
        for c_in, c_out in zip(sizes[:-1], sizes[1:], strict=True):
            encoder += [nn.Conv1d(c_in, c_out, KERNEL), nn.LeakyReLU()]
        decoder: list[nn.Module] = []
        back = sizes[::-1]
        for i, (c_in, c_out) in enumerate(zip(back[:-1], back[1:], strict=True)):
            last = i == len(back) - 2
            decoder += [
                nn.ConvTranspose1d(c_in, c_out, KERNEL),
                nn.PReLU() if last else nn.LeakyReLU(),
            ]
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.min_frames = (KERNEL - 1) * (len(sizes) - 1) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class VideoAutoencoder(nn.Module):
    """``(..., dim) -> (..., dim)`` per frame.

    Published (2304-d SlowFast features): encoder 2304 -> 512 -> 256 -> [drop] 128 -> [drop] 64
    -> [drop] 64, decoder 64 -> 64 -> 128 -> 256 -> 512 -> [drop] 2304. Here: dropout before the
    third and later encoder layers and before the decoder's output layer, for any ``widths``.
    """

    def __init__(self, dim: int, widths: Sequence[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        sizes = [dim, *widths]
        for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if i >= 2:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(c_in, c_out), nn.ReLU()]
        back = list(widths[::-1])
        for c_in, c_out in zip(back[:-1], back[1:], strict=True):
            layers += [nn.Linear(c_in, c_out), nn.ReLU()]
        layers += [nn.Dropout(dropout), nn.Linear(widths[0], dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def frame_errors(x: torch.Tensor, recon: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean squared error per frame over the feature axis ``dim``."""
    return (x - recon).square().mean(dim)


def moving_max(errors: torch.Tensor, window: int) -> float:
    """Max over time of the ``window``-frame moving average (the whole run when shorter)."""
    window = min(window, len(errors))
    sums = torch.cumsum(torch.cat([errors.new_zeros(1), errors.double()]), 0)
    return float(((sums[window:] - sums[:-window]) / window).max())
