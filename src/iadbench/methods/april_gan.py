"""APRIL-GAN (METHODS §2.2): a linear layer per tap maps frozen raw CLIP tokens to text space.

The image score is plain zero-shot CLIP (the projected CLS against the prototypes), which no
training reaches; only the per-tap linear layers learn, from focal + dice on each tap's map.
"""

from __future__ import annotations

import torch
from torch import nn

from iadbench.clip.encoder import ClipEncoder
from iadbench.methods.clip_trained import ClipHead, TrainedClip
from iadbench.methods.kinds import AprilGanParams


class AprilGanHead(ClipHead):
    """One ``Linear(width -> embed dim)`` per tap; maps summed over taps, upsampled with
    ``align_corners=True`` as the official code does."""

    align_corners = True
    tap_reduce = "sum"

    def __init__(self, encoder: ClipEncoder, taps, temperature: float | str) -> None:
        super().__init__(encoder, temperature)
        self.taps = encoder.resolve_blocks(taps)
        visual = encoder.visual
        width, dim = visual.conv1.out_channels, visual.proj.shape[1]
        self.linear = nn.ModuleList(nn.Linear(width, dim) for _ in self.taps)

    def forward(self, images: torch.Tensor, protos: torch.Tensor):
        out = self.encoder.encode_image(images, list(self.taps), "raw")  # no_grad: frozen
        taps = [self.two_class(lin(t.float()), protos) for lin, t in zip(self.linear, out.patches)]
        return self.image_logits(out.cls, protos), taps


class AprilGan(TrainedClip):
    kind = "april_gan"
    params_class = AprilGanParams

    def build(self, encoder: ClipEncoder) -> AprilGanHead:
        p = self.params
        return AprilGanHead(encoder, p.taps, p.temperature)
