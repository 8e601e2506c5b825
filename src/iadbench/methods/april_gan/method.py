"""APRIL-GAN (METHODS §2.2): a linear layer per tap maps frozen raw CLIP tokens to text space.

The image score is plain zero-shot CLIP (the projected CLS against the prototypes), which no
training reaches; only the per-tap linear layers learn, from focal + dice on each tap's map.
"""

from __future__ import annotations

import torch
from torch import nn

from iadbench.clip.encoder import ClipEncoder, FrozenStream
from iadbench.methods.april_gan.params import AprilGanParams
from iadbench.methods.clip_trained.trainer import ClipHead, TrainedClip


class AprilGanHead(ClipHead):
    """One ``Linear(width -> embed dim)`` per tap; maps summed over taps, upsampled with
    ``align_corners=True`` as the official code does. Everything before the linear layers is
    frozen: the raw tokens at the taps and the image embedding."""

    align_corners = True
    tap_reduce = "sum"

    def __init__(self, encoder: ClipEncoder, taps, temperature: float | str) -> None:
        super().__init__(encoder, temperature)
        self.taps = self.frozen_blocks = encoder.resolve_blocks(taps)
        visual = encoder.visual
        width, dim = visual.conv1.out_channels, visual.proj.shape[1]
        self.linear = nn.ModuleList(nn.Linear(width, dim) for _ in self.taps)

    def frozen(self, images: torch.Tensor) -> FrozenStream:
        return self.encoder.frozen_stream(images, self.taps)

    def from_frozen(self, frozen: FrozenStream, protos: torch.Tensor):
        h, w = self.encoder.grid
        patches = frozen.tokens[:, :, 1:].float().unflatten(2, (h, w))  # (B, T, h, w, width)
        taps = [self.two_class(lin(patches[:, i]), protos) for i, lin in enumerate(self.linear)]
        return self.image_logits(frozen.cls, protos), taps


class AprilGan(TrainedClip):
    kind = "april_gan"
    params_class = AprilGanParams

    def build(self, encoder: ClipEncoder) -> AprilGanHead:
        p = self.params
        return AprilGanHead(encoder, p.taps, p.temperature)
