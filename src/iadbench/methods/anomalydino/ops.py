"""AnomalyDINO's maths (METHODS §5.1) as small functions of arrays, one per step of the paper.

Each follows dammsi/AnomalyDINO @b3435f0 (``src/backbones.py``, ``src/detection.py``,
``src/utils.py``, ``src/post_eval.py``); where anomalib 2.7.0 differs, docs/methods/dinov2.md
names the difference.
"""

from __future__ import annotations

import numpy as np
import torch

ANGLES = (0, 45, 90, 135, 180, 225, 270, 315)  # the authors' rotation augmentation
MASK_THRESHOLD = 10.0  # first principal component > 10 is foreground
MASK_BORDER = 0.2  # the centre test looks at the grid without 20 % on each side...
MASK_KEEP = 0.35  # ...and flips the component's sign when at most 35 % of it is foreground


def rotate(rgb: np.ndarray, angle: float) -> np.ndarray:
    """uint8 (H, W, 3) rotated by ``angle`` degrees about the image centre, same size, bilinear,
    borders filled by reflection without repeating the edge pixel (OpenCV's BORDER_DEFAULT =
    BORDER_REFLECT_101, the authors' ``rotate_image``)."""
    import cv2

    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(
        rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def augment(rgb: np.ndarray, rotation: bool) -> list[np.ndarray]:
    """The copies of a reference that enter the memory: the 8 rotations, or the image alone."""
    return [rotate(rgb, angle) for angle in ANGLES] if rotation else [rgb]


def first_component(tokens: np.ndarray) -> np.ndarray:
    """(n, C) tokens -> (n,) scores on their first principal component.

    The axis is the exact leading eigenvector of the centred tokens' scatter matrix (C x C, in
    float64: a 384-d eigenproblem instead of an SVD of all n tokens); its sign is scikit-learn's
    (>= 1.5) convention, the loading vector's largest-magnitude entry positive, which decides
    where the foreground test starts. (The authors call scikit-learn's randomized solver, which
    finds the same axis up to rounding on 384-d tokens.)
    """
    x = np.asarray(tokens, dtype=np.float64)
    centred = x - x.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    axis = vectors[:, -1]
    axis = axis * np.sign(axis[np.argmax(np.abs(axis))])
    return centred @ axis


def foreground_mask(
    first_pc: np.ndarray,
    grid: tuple[int, int],
    threshold: float = MASK_THRESHOLD,
    border: float = MASK_BORDER,
    keep: float = MASK_KEEP,
) -> np.ndarray:
    """(h·w,) first-component scores -> (h, w) bool foreground.

    Foreground = score > ``threshold``. If that keeps at most ``keep`` of the grid's centre
    (``border`` cut from every side), the object is taken to lie on the other side of the axis
    and the sign is flipped (-score > ``threshold``). Then a 3x3 dilation and a 3x3 closing
    (OpenCV's, whose borders neither add nor erode) fill small holes.
    """
    import cv2

    h, w = grid
    scores = np.asarray(first_pc, dtype=np.float64).reshape(h, w)
    mask = scores > threshold
    centre = mask[int(h * border) : int(h * (1 - border)), int(w * border) : int(w * (1 - border))]
    if centre.sum() <= centre.size * keep:
        mask = -scores > threshold
    kernel = np.ones((3, 3), np.uint8)
    mask = cv2.dilate(mask.astype(np.uint8), kernel)
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel).astype(bool)


def nearest_cosine(
    queries: torch.Tensor, bank: torch.Tensor, k: int = 1, columns: int = 16384
) -> torch.Tensor:
    """(Q,) mean over the ``k`` nearest bank rows of the cosine distance 1 - cos(q, m).

    Both sides must be L2-normalised. The authors search squared L2 of normalised vectors with
    faiss and halve it, the same quantity; negative rounding residue is clamped to 0 as faiss
    does. The bank is scanned in ``columns``-wide blocks, keeping the k best so far, so a
    16-shot, 8-rotation bank (131k rows) never materialises a full distance matrix.
    """
    best: torch.Tensor | None = None
    for start in range(0, bank.shape[0], columns):
        dists = (1.0 - queries @ bank[start : start + columns].T).clamp_(min=0.0)
        if best is not None:
            dists = torch.cat([best, dists], dim=1)
        best = torch.topk(dists, min(k, dists.shape[1]), dim=1, largest=False).values
    if best is None:
        raise ValueError("empty memory bank")
    return best.mean(dim=1)


def mean_top1p(distances: np.ndarray) -> float:
    """Image score: the mean of the largest 1 % of the patch distances (``int(n / 100)`` of
    them), or their maximum when there are fewer than 100 patches (the authors' ``mean_top1p``).
    Background patches take part with their distance 0."""
    flat = np.asarray(distances, dtype=np.float64).ravel()
    top = int(len(flat) * 0.01)
    if top == 0:
        return float(flat.max())
    return float(np.sort(flat)[::-1][:top].mean())
