"""FE-CLIP (METHODS §3): frequency adapters inside a frozen CLIP, trained on one dataset.

At each tap block the patch tokens are replaced by ``λ·(FFE(f) + LFS(f)) + (1 − λ)·f`` before
the next block runs, so later blocks see the enhanced tokens; the CLS token is untouched. Each
tap's fused tokens go through the frozen ``ln_post`` and a trainable ``fc_patch`` initialised
from CLIP's ``proj``; the image logits come from the same adapted pass's CLS through the frozen
``ln_post @ proj``, so the image loss reaches the adapters.
"""

from __future__ import annotations

import torch
from torch import nn

from iadbench.clip.encoder import ClipEncoder, FrozenStream
from iadbench.methods.clip_trained.trainer import ClipHead, TrainedClip
from iadbench.methods.fe_clip.adapters import FrequencyAdapter
from iadbench.methods.fe_clip.params import FeClipParams


class FeClipHead(ClipHead):
    """Adapters at ``taps`` plus ``fc_patch``; maps averaged over taps. The frozen part is the
    residual stream entering the first adapted block (the output of the block before it)."""

    def __init__(self, encoder: ClipEncoder, p: FeClipParams) -> None:
        super().__init__(encoder, p.temperature)
        self.taps = encoder.resolve_blocks(p.taps)
        self.start = self.taps[0]
        self.frozen_blocks = (self.start - 1,) if self.start > 0 else ()
        visual = encoder.visual
        width, dim = visual.conv1.out_channels, visual.proj.shape[1]
        self.adapters = nn.ModuleList(
            FrequencyAdapter(width, int(p.P), int(p.Q), p.lfs_stat, float(p.lam)) for _ in self.taps
        )
        self.fc_patch = nn.Linear(width, dim, bias=False)
        with torch.no_grad():
            self.fc_patch.weight.copy_(visual.proj.detach().T.float())
        self.fc_mult = float(p.fc_lr_mult)
        self.fc_patch.requires_grad_(self.fc_mult > 0)

    def lr_multipliers(self) -> dict[str, float]:
        return {"fc_patch.": self.fc_mult}

    def frozen(self, images: torch.Tensor) -> FrozenStream:
        if self.frozen_blocks:
            return self.encoder.frozen_stream(images, self.frozen_blocks, final=False)
        with torch.no_grad():
            return FrozenStream(self.encoder.stream_start(images)[:, None], None)

    def adapted(self, frozen: FrozenStream) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(final tokens (B, 1 + h*w, width), fused patch grids at the taps (B, h, w, width))."""
        v = self.encoder.visual
        x = frozen.tokens[:, 0].to(v.conv1.weight.dtype)
        h, w = self.encoder.grid
        grids, adapter = [], iter(self.adapters)
        for i in range(self.start, len(v.transformer.resblocks)):
            x = self.encoder.run_block(v.transformer.resblocks[i], x)
            if i in self.taps:
                grid = next(adapter)(x[:, 1:].reshape(x.shape[0], h, w, -1))
                grids.append(grid)
                x = torch.cat([x[:, :1], grid.reshape(x.shape[0], h * w, -1)], dim=1)
        return x, grids

    def from_frozen(self, frozen: FrozenStream, protos: torch.Tensor):
        v = self.encoder.visual
        x, grids = self.adapted(frozen)
        taps = [self.two_class(self.fc_patch(v.ln_post(g)), protos) for g in grids]
        return self.image_logits(v.ln_post(x[:, 0]) @ v.proj, protos), taps


class FeClip(TrainedClip):
    kind = "fe_clip"
    params_class = FeClipParams

    def build(self, encoder: ClipEncoder) -> FeClipHead:
        return FeClipHead(encoder, self.params)
