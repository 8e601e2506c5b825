"""The Intel paper's two autoencoders (METHODS §6.3), with configurable widths.

Audio: ``BN1d -> Conv1d(k3)...`` down to a bottleneck and the mirror ``ConvTranspose1d`` stack
back, LeakyReLU everywhere but the last layer (PReLU). The paper gives neither the padding nor
the LeakyReLU slope. By default (``padding="valid"``) the convolutions are unpadded, so each
encoder layer trims one frame at each end and its transposed mirror restores it: the output has
the input's length and no frame is reconstructed from zero padding. ``padding="same"`` pads every
(transposed) convolution by one frame, as the public reimplementation
(bluuueheart/Weld-Anomaly-Detection, ``baselines/Late_Fusion``) does, so the end frames see zeros.
Video: a per-frame FC autoencoder with ReLU and dropout where the published network has it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

KERNEL = 3
PADDINGS = {"valid": 0, "same": KERNEL // 2}


class AudioAutoencoder(nn.Module):
    """``(B, bins, T) -> (B, bins, T)``; unpadded (``"valid"``), ``T`` must exceed
    ``2 · (len(widths) + 1)``. ``slope`` is the LeakyReLU's negative slope (torch's default 0.01;
    the reimplementation uses 0.2)."""

    def __init__(
        self,
        bins: int,
        widths: Sequence[int],
        bottleneck: int,
        padding: str = "valid",
        slope: float = 0.01,
    ) -> None:
        super().__init__()
        pad = PADDINGS[padding]
        sizes = [bins, *widths, bottleneck]
        encoder: list[nn.Module] = [nn.BatchNorm1d(bins)]
        for c_in, c_out in zip(sizes[:-1], sizes[1:], strict=True):
            encoder += [nn.Conv1d(c_in, c_out, KERNEL, padding=pad), nn.LeakyReLU(slope)]
        decoder: list[nn.Module] = []
        back = sizes[::-1]
        for i, (c_in, c_out) in enumerate(zip(back[:-1], back[1:], strict=True)):
            last = i == len(back) - 2
            decoder += [
                nn.ConvTranspose1d(c_in, c_out, KERNEL, padding=pad),
                nn.PReLU() if last else nn.LeakyReLU(slope),
            ]
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.min_frames = (KERNEL - 1 - 2 * pad) * (len(sizes) - 1) + 1

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
