"""What the trained CLIP kinds (APRIL-GAN, FE-CLIP) share: data, losses, training and scoring.

A kind supplies a head (:class:`ClipHead`): an ``nn.Module`` whose registered parameters are
exactly what trains, holding the frozen CLIP outside its state dict (so checkpoints stay small
and ``model.train()`` never switches CLIP out of eval mode). A head's forward pass is its
frozen part (:meth:`ClipHead.frozen`) then its trained part (:meth:`ClipHead.from_frozen`), so
training can start from a cached frozen stream (:mod:`iadbench.clip.frozen`) and stay the same
computation. Training reads every category of the train set (images or their cached stream,
masks and the text prototypes of its class name) and nothing else; scoring reads the target
category's images and its own text prototypes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import nn

from iadbench.clip.encoder import ClipEncoder, FrozenStream, prototypes
from iadbench.clip.outputs import image_batches, load_encoder
from iadbench.clip.train_data import FrozenSet, ImageSet
from iadbench.data.images import Geometry, load_image, load_mask
from iadbench.device import resolve_device
from iadbench.errors import CacheError
from iadbench.io import save_json
from iadbench.methods.base import Method, MethodInputs, load_state
from iadbench.seeding import seeded
from iadbench.training import TrainConfig, load_weights, train_model

log = logging.getLogger(__name__)
SCORE_BATCH = 16


class ClipHead(nn.Module):
    """Base of a trainable head on a frozen CLIP. ``forward(images, protos)`` returns
    ``(image_logits (B, 2), tap_logits [(B, 2, h, w)...])``, logits already divided by τ.
    ``frozen_blocks``: the blocks whose output stream :meth:`frozen` returns (and a cache holds).
    """

    align_corners = False
    tap_reduce = "mean"
    frozen_blocks: tuple[int, ...] = ()

    def __init__(self, encoder: ClipEncoder, temperature: float | str) -> None:
        super().__init__()
        encoder.model.eval().requires_grad_(False)
        self._frozen = [encoder]  # a list: not a submodule, so not in state_dict()
        self.learned = temperature == "learned"
        if self.learned:  # CLIP's own logit scale as the starting point
            self.log_scale = nn.Parameter(encoder.model.logit_scale.detach().clone().float())
        else:
            self.scale = 1.0 / float(temperature)

    @property
    def encoder(self) -> ClipEncoder:
        return self._frozen[0]

    def frozen(self, images: torch.Tensor) -> FrozenStream:
        """What no training changes: the same for an image every epoch (without augmentation)."""
        raise NotImplementedError

    def from_frozen(self, frozen: FrozenStream, protos: torch.Tensor):
        """The trained part, from :meth:`frozen`'s output or a cached copy of it."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor, protos: torch.Tensor):
        return self.from_frozen(self.frozen(images), protos)

    def logit_scale(self) -> torch.Tensor | float:
        return self.log_scale.exp() if self.learned else self.scale

    def image_logits(self, cls: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
        """(B, D) projected CLS embeddings, (B, 2, D) unit prototypes -> (B, 2) scaled logits."""
        z = F.normalize(cls.float(), dim=-1)
        return torch.einsum("bd,bcd->bc", z, protos) * self.logit_scale()

    def two_class(self, tokens: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
        """(B, h, w, D) tokens, (B, 2, D) unit prototypes -> (B, 2, h, w) scaled cosine logits."""
        z = F.normalize(tokens, dim=-1)
        return torch.einsum("bhwd,bcd->bchw", z, protos) * self.logit_scale()


def focal_loss(
    prob: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, smooth: float = 0.0
) -> torch.Tensor:
    """Two-class focal loss (α = 1) on (B, 2, H, W) probabilities and a (B, H, W) 0/1 mask.

    ``smooth`` is VAND's label smoothing (its ``FocalLoss(smooth=1e-5)``): the one-hot target
    is clipped to [s, 1 - s] and s is added to the true-class probability, so
    p_t' = (1 - 2s)·p_t + 2s. That floor (2e-5) is what bounds the loss of a saturated wrong
    pixel (-log 2e-5 ≈ 10.8); with ``smooth`` 0 the floor is 1e-8 (≈ 18.4), which at CLIP's
    scale 100 changes the loss and its gradients, not only their last digits.
    """
    p_true = torch.where(target > 0.5, prob[:, 1], prob[:, 0])
    p_true = (p_true * (1.0 - 2.0 * smooth) + 2.0 * smooth).clamp_min(1e-8)
    return (-((1.0 - p_true) ** gamma) * p_true.log()).mean()


def dice_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Binary dice (smooth 1) per image, averaged: (B, H, W) anomaly probability and mask."""
    inter = (prob * target).flatten(1).sum(1)
    total = prob.flatten(1).sum(1) + target.flatten(1).sum(1)
    return (1.0 - (2.0 * inter + smooth) / (total + smooth)).mean()


def class_prototypes(inputs: MethodInputs) -> torch.Tensor:
    """(2, D) unit prototypes of a category's cached sentence embeddings (APRIL-GAN's way)."""
    text = inputs.cached.get("text")
    if text is None:
        raise CacheError("a trained CLIP kind needs the cached text embeddings of its prompts")
    return prototypes(torch.from_numpy(text["normal"]), torch.from_numpy(text["anomalous"]), True)


class TrainedClip(Method):
    """Train a :class:`ClipHead` on a train set; score maps and images with it."""

    def build(self, encoder: ClipEncoder) -> ClipHead:
        raise NotImplementedError

    def _head(self, backbone: dict) -> ClipHead:
        encoder = load_encoder(backbone, self.device)
        return seeded(self.seed, self.build, encoder)

    def _loss(self, head: ClipHead, protos: torch.Tensor, batch) -> dict[str, torch.Tensor]:
        p = self.params
        inputs, masks, classes = batch
        protos = protos.to(masks.device)[classes]
        if isinstance(inputs, dict):  # the cached frozen stream
            image_logits, taps = head.from_frozen(FrozenStream(**inputs), protos)
        else:
            image_logits, taps = head(inputs, protos)
        size = masks.shape[-2:]
        focal = dice = masks.new_zeros(())
        smooth = float(getattr(p, "focal_smooth", 0.0))
        for logits in taps:
            up = F.interpolate(logits, size, mode="bilinear", align_corners=head.align_corners)
            prob = up.softmax(1)
            focal = focal + focal_loss(prob, masks, smooth=smooth)
            dice = dice + dice_loss(prob[:, 1], masks)
        if head.tap_reduce == "mean":
            focal, dice = focal / len(taps), dice / len(taps)
        parts = {"focal": focal, "dice": dice}
        total = float(p.focal_weight) * focal + float(p.dice_weight) * dice
        cls_weight = float(getattr(p, "cls_weight", 0.0))
        if cls_weight > 0 and image_logits.requires_grad:
            labels = (masks.flatten(1).amax(1) > 0.5).long()
            parts["cls"] = F.cross_entropy(image_logits, labels)
            total = total + cls_weight * parts["cls"]
        return {"loss": total, **parts}

    def _cached(self, parts: list[MethodInputs], head: ClipHead) -> list | None:
        """Each part's cached frozen stream when training starts from it, else None."""
        view = self.params.cache_view(parts[0].backbone["model"])
        files = [part.cached.get("frozen") for part in parts]
        if view is None:
            return None
        if any(f is None for f in files):
            raise CacheError(
                f"{self.kind} frozen_cache is on ({view}) but no cached frozen stream was given"
            )
        if any(f.blocks != head.frozen_blocks for f in files):
            raise CacheError(f"cached frozen blocks are not the head's {head.frozen_blocks}")
        return files

    def train(self, parts: list[MethodInputs], out_dir: Path, resume_dir: Path) -> dict:
        backbone = parts[0].backbone
        geometry = Geometry.from_config(parts[0].dataset)
        threshold = int(parts[0].dataset.get("mask_threshold", 0))
        head = self._head(backbone)
        frozen = self._cached(parts, head)
        # APRIL-GAN's resize filters (VAND: bicubic images, bilinear masks > 0.5); the others
        # keep the dataset geometry's (bilinear images, nearest masks).
        image_rs = str(getattr(self.params, "image_resize", "bilinear"))
        mask_rs = str(getattr(self.params, "mask_resize", "nearest"))
        images, where, masks, classes, protos, sources = [], [], [], [], [], []
        for c, part in enumerate(parts):
            protos.append(class_prototypes(part))
            if frozen is not None:
                rows = frozen[c].rows(part.index["sample_id"].tolist(), f"{self.kind} training")
                where += [(c, r) for r in rows]
            for row in part.index.itertuples():
                if frozen is None:
                    images.append(geometry.image(load_image(row.image_path), image_rs))
                    sources.append((row.image_path, row.mask_path))
                if not isinstance(row.mask_path, str):  # normal image: no mask file
                    masks.append(np.zeros((geometry.crop, geometry.crop), bool))
                else:
                    masks.append(geometry.mask(load_mask(row.mask_path, threshold), mask_rs))
                classes.append(c)
        if frozen is None:
            mosaic_p = float(getattr(self.params, "mosaic", 0.0))
            originals = None
            if getattr(self.params, "mosaic_of", "crops") == "originals":

                def originals(i: int) -> tuple[np.ndarray, np.ndarray]:
                    image_path, mask_path = sources[i]
                    image = load_image(image_path)
                    if not isinstance(mask_path, str):
                        return image, np.zeros(image.shape[:2], bool)
                    return image, load_mask(mask_path, threshold)

            data = ImageSet(
                images,
                masks,
                classes,
                head.encoder.preprocessing,
                mosaic_p,
                image_rs,
                originals=originals,
                geometry=geometry,
                mask_resample=mask_rs,
            )
        else:
            data = FrozenSet(frozen, where, masks, classes)
        protos_t = torch.stack(protos)
        device = resolve_device(self.device)
        summary = train_model(
            head,
            data,
            lambda model, batch: self._loss(model, protos_t, batch),
            TrainConfig.from_config(self.cfg),
            out_dir,
            resume_dir,
            device=device,
            params_hash=resume_dir.name,
        )
        categories = [str(p.index["category"].iloc[0]) for p in parts]
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "weights": head.encoder.weights.identity,
            "taps": list(head.taps),
            "train_categories": categories,
            "frozen_cache": frozen is not None,
            "n_train_images": len(masks),
            "n_train_anomalous": int(sum(m.any() for m in masks)),
            **summary,
        }
        save_json(out_dir / "state.json", state)
        return state

    def score(self, state_dir: Path | None, inputs: MethodInputs, out_size: tuple[int, int]):
        if state_dir is None:
            raise CacheError(f"{self.kind} scores with a trained model; none was given")
        state = load_state(state_dir)
        if state.get("kind") != self.kind:
            raise CacheError(f"{state_dir}: a {state.get('kind')} model, not {self.kind}")
        head = self._head(inputs.backbone)
        load_weights(head, Path(state_dir) / "last.pt", head.encoder.device)
        head.eval()
        protos = class_prototypes(inputs).to(head.encoder.device)
        scores, maps = [], []
        batches = image_batches(
            inputs.index["image_path"].tolist(),
            inputs.dataset,
            head.encoder,
            SCORE_BATCH,
            f"{self.kind} score",
            getattr(self.params, "score_resize", None),  # None: the backbone's ``resample``
        )
        with torch.no_grad():
            for batch in batches:
                batch = batch.to(head.encoder.device)
                image_logits, taps = head(batch, protos.expand(len(batch), -1, -1))
                scores.append(image_logits.float().softmax(1)[:, 1].cpu())
                maps.append(self._map(head, taps, out_size))
        return torch.cat(scores).double().numpy(), np.concatenate(maps)

    def _map(self, head: ClipHead, taps: list[torch.Tensor], size) -> np.ndarray:
        """(B, H, W): taps' anomaly probability (or logit margin), summed or averaged, blurred."""
        use_margin = getattr(self.params, "map", "prob") == "logit_margin"
        per_tap = []
        for logits in taps:
            logits = logits.float()
            up = F.interpolate(logits, size, mode="bilinear", align_corners=head.align_corners)
            per_tap.append(up[:, 1] - up[:, 0] if use_margin else up.softmax(1)[:, 1])
        stacked = torch.stack(per_tap)
        combined = stacked.sum(0) if head.tap_reduce == "sum" else stacked.mean(0)
        out = combined.cpu().numpy().astype(np.float32)
        sigma = float(self.params.smooth_sigma)
        return gaussian_filter(out, sigma=(0.0, sigma, sigma)) if sigma > 0 else out
