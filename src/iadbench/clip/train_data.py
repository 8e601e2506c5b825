"""Training samples of the trained CLIP kinds: images (optionally mosaicked) or cached tokens.

Each sample is ``(input, mask, class index)``; the input is a normalised image, or the cached
frozen stream (``{"tokens", "cls"}``) when training starts from it. Augmentation draws from
Python's ``random``, which the training loop reseeds from (seed, epoch): the same seed gives
the same mosaics, after a resume too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from iadbench.backbones.loader import Preprocessing
from iadbench.clip.frozen import FrozenFile
from iadbench.data.images import RESAMPLE
from iadbench.features.extract import normalise_images


def mosaic(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], image_resample: str = "bilinear"
):
    """Four (H, W, 3) uint8 images and (H, W) bool masks tiled 2×2 in reading order, then
    resized back to (H, W): the image with the PIL filter ``image_resample`` (APRIL-GAN's
    default: bicubic, VAND's ``preprocess``), the mask bilinear, thresholded at 0.5 (METHODS
    §2.2, VAND)."""
    if len(images) != 4 or len(masks) != 4:
        raise ValueError("a mosaic takes exactly four images and four masks")
    h, w = images[0].shape[:2]

    def tile(parts: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.concatenate(parts[:2], 1), np.concatenate(parts[2:], 1)], 0)

    image = Image.fromarray(tile(images)).resize((w, h), RESAMPLE[image_resample])
    mask = Image.fromarray(tile([m.astype(np.uint8) * 255 for m in masks]))
    return np.asarray(image), np.asarray(mask.resize((w, h), Image.BILINEAR)) > 127


class ImageSet(torch.utils.data.Dataset):
    """Geometry-applied images with their masks and class indices; with probability
    ``mosaic_p`` a sample becomes a mosaic of four images of its class drawn with replacement
    (VAND draws them at random from the class, not necessarily the sample itself), resized
    back with the PIL filter ``resample`` (:func:`mosaic`)."""

    def __init__(
        self,
        images,
        masks,
        classes,
        preprocessing: Preprocessing,
        mosaic_p=0.0,
        resample: str = "bilinear",
    ):
        self.images, self.masks, self.classes = images, masks, classes
        self.pp, self.mosaic_p, self.resample = preprocessing, float(mosaic_p), resample
        self.members: dict[int, list[int]] = {}
        for i, c in enumerate(classes):
            self.members.setdefault(c, []).append(i)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image, mask = self.images[i], self.masks[i]
        if self.mosaic_p > 0 and random.random() < self.mosaic_p:
            picks = random.choices(self.members[self.classes[i]], k=4)
            image, mask = mosaic(
                [self.images[j] for j in picks], [self.masks[j] for j in picks], self.resample
            )
        pixels = normalise_images([image], self.pp)[0]
        return pixels, torch.from_numpy(mask).float(), self.classes[i]


class FrozenSet(torch.utils.data.Dataset):
    """Samples read from cached streams: ``where[i]`` = (file index, row); fp16 tokens stay
    fp16 until the head casts them on its device."""

    def __init__(self, files: Sequence[FrozenFile], where, masks, classes) -> None:
        self.files, self.where, self.masks, self.classes = files, where, masks, classes

    def __len__(self) -> int:
        return len(self.where)

    def __getitem__(self, i: int):
        f, row = self.where[i]
        tokens = torch.from_numpy(np.array(self.files[f].tokens[row]))  # a copy: writable
        frozen = {"tokens": tokens, "cls": torch.from_numpy(self.files[f].cls[row])}
        return frozen, torch.from_numpy(self.masks[i]).float(), self.classes[i]
