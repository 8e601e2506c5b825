"""Training samples of the trained CLIP kinds: images (optionally mosaicked) or cached tokens.

Each sample is ``(input, mask, class index)``; the input is a normalised image, or the cached
frozen stream (``{"tokens", "cls"}``) when training starts from it. Augmentation draws from
Python's ``random``, which the training loop reseeds from (seed, epoch): the same seed gives
the same mosaics, after a resume too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from iadbench.backbones.loader import Preprocessing
from iadbench.clip.frozen import FrozenFile
from iadbench.data.images import RESAMPLE, Geometry
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
    image = Image.fromarray(_tile(images)).resize((w, h), RESAMPLE[image_resample])
    mask = Image.fromarray(_tile([m.astype(np.uint8) * 255 for m in masks]))
    return np.asarray(image), np.asarray(mask.resize((w, h), Image.BILINEAR)) > 127


def _tile(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Four equal-size arrays in a 2×2 grid, reading order."""
    return np.concatenate([np.concatenate(parts[:2], 1), np.concatenate(parts[2:], 1)], 0)


def mosaic_of_originals(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    geometry: Geometry,
    image_resample: str,
    mask_resample: str,
) -> tuple[np.ndarray, np.ndarray]:
    """VAND's ``combine_img``: the four *original* images and masks tiled 2×2 at full size, then
    the geometry applied to the mosaic as to any image (one resize, ``image_resample``; masks
    ``mask_resample``). :func:`mosaic` instead tiles the already-resized crops and resizes the
    mosaic back, which resamples twice. Images of another size than the first are first resized
    to it (VAND pastes them unresized into a canvas of the first's size)."""
    if len(images) != 4 or len(masks) != 4:
        raise ValueError("a mosaic takes exactly four images and four masks")
    h, w = images[0].shape[:2]
    fitted, fitted_masks = [], []
    for image, mask in zip(images, masks, strict=True):
        if image.shape[:2] != (h, w):
            image = np.asarray(Image.fromarray(image).resize((w, h), RESAMPLE[image_resample]))
        if mask.shape != (h, w):
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h))) > 127
        fitted.append(image)
        fitted_masks.append(mask)
    image = geometry.image(_tile(fitted), image_resample)
    return image, geometry.mask(_tile(fitted_masks), mask_resample)


class ImageSet(torch.utils.data.Dataset):
    """Geometry-applied images with their masks and class indices; with probability
    ``mosaic_p`` a sample becomes a mosaic of four images of its class drawn with replacement
    (VAND draws them at random from the class, not necessarily the sample itself): of the
    resized crops, resized back with the PIL filter ``resample`` (:func:`mosaic`), or, given
    ``originals`` (sample index -> its full-size image and mask, read when drawn), of the
    originals with the geometry applied once (:func:`mosaic_of_originals`, VAND's)."""

    def __init__(
        self,
        images,
        masks,
        classes,
        preprocessing: Preprocessing,
        mosaic_p=0.0,
        resample: str = "bilinear",
        originals: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
        geometry: Geometry | None = None,
        mask_resample: str = "nearest",
    ):
        if originals is not None and geometry is None:
            raise ValueError("a mosaic of originals needs the geometry to apply to it")
        self.images, self.masks, self.classes = images, masks, classes
        self.pp, self.mosaic_p, self.resample = preprocessing, float(mosaic_p), resample
        self.originals, self.geometry, self.mask_resample = originals, geometry, mask_resample
        self.members: dict[int, list[int]] = {}
        for i, c in enumerate(classes):
            self.members.setdefault(c, []).append(i)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image, mask = self.images[i], self.masks[i]
        if self.mosaic_p > 0 and random.random() < self.mosaic_p:
            picks = random.choices(self.members[self.classes[i]], k=4)
            if self.originals is None:
                image, mask = mosaic(
                    [self.images[j] for j in picks], [self.masks[j] for j in picks], self.resample
                )
            else:
                parts = [self.originals(j) for j in picks]
                image, mask = mosaic_of_originals(
                    [p[0] for p in parts],
                    [p[1] for p in parts],
                    self.geometry,
                    self.resample,
                    self.mask_resample,
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
