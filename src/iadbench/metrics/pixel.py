"""Pixel-level metrics (METHODS.md §7 and §10): P-AUROC, P-AP, P-F1max, AUPRO.

Inputs are masks and maps given either as (N, H, W) arrays or as lists of (H, W) arrays whose
size may change between images. Masks are binarised with ``> 0``, so 0/1 and 0/255 masks agree.
A mask entry may be None: the image has no ground-truth defect (an all-zero mask).
Pixel metrics pool all pixels of all images given (normal images included), as the papers do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from .image import f1_max_from_pr

Maps = np.ndarray | Sequence[ArrayLike]  # (N, H, W) array or list of (H, W) arrays
Masks = np.ndarray | Sequence[ArrayLike | None]  # same; None = all-zero mask
_STRUCTURE_8 = np.ones((3, 3), dtype=int)  # 8-connectivity, as MVTec's official script


def as_pairs(masks: Masks, maps: Maps) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return per-image (bool mask, float map) 2-D arrays after checking counts, shapes, NaN/Inf."""
    if isinstance(maps, np.ndarray) and maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W) or a list of (H, W) arrays, got {maps.shape}")
    if isinstance(masks, np.ndarray) and masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) or a list of (H, W) arrays, got {masks.shape}")
    if len(masks) != len(maps):
        raise ValueError(f"number of masks ({len(masks)}) != number of maps ({len(maps)})")
    mask_list, map_list = [], []
    for i, (mask, amap) in enumerate(zip(masks, maps)):
        a = np.asarray(amap)
        if a.ndim != 2:
            raise ValueError(f"image {i}: map must be 2-D (H, W), got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"image {i}: map contains NaN or Inf")
        if mask is None:
            m = np.zeros(a.shape, dtype=bool)
        else:
            m = np.asarray(mask)
            if m.shape != a.shape:
                raise ValueError(f"image {i}: mask shape {m.shape} != map shape {a.shape}")
            m = m > 0
        mask_list.append(m)
        map_list.append(a)
    if not map_list:
        raise ValueError("no images given")
    return mask_list, map_list


def _flatten(masks: Masks, maps: Maps) -> tuple[np.ndarray, np.ndarray]:
    return _flat_from_pairs(*as_pairs(masks, maps), maps)


def _flat_from_pairs(mask_list, map_list, maps) -> tuple[np.ndarray, np.ndarray]:
    """All pixels of all images as (bool labels, scores); no copy of an (N, H, W) float map."""
    y = np.concatenate([m.ravel() for m in mask_list])
    if isinstance(maps, np.ndarray) and np.issubdtype(maps.dtype, np.floating):
        s = maps.reshape(-1)
    else:
        s = np.concatenate([a.ravel() for a in map_list])
    return y, s


def _one_class(y: np.ndarray) -> bool:
    return bool(y.all() or not y.any())


def pixel_auroc(masks: Masks, maps: Maps) -> float:
    """sklearn ROC AUC over all pixels of all images; NaN if only one class is present."""
    y, s = _flatten(masks, maps)
    return float("nan") if _one_class(y) else float(roc_auc_score(y, s))


def pixel_ap(masks: Masks, maps: Maps) -> float:
    """sklearn average precision over all pixels; NaN if only one class is present."""
    y, s = _flatten(masks, maps)
    return float("nan") if _one_class(y) else float(average_precision_score(y, s))


def pixel_f1_max(masks: Masks, maps: Maps) -> float:
    """Max F1 over thresholds of the pixel PR curve (NaN points ignored); NaN if one class."""
    y, s = _flatten(masks, maps)
    if _one_class(y):
        return float("nan")
    precision, recall, _ = precision_recall_curve(y, s)
    return f1_max_from_pr(precision, recall)


def pixel_metrics(masks: Masks, maps: Maps, fpr_limit: float = 0.3) -> dict[str, float]:
    """All pixel metrics with one validation pass and one PR curve (AP and F1max share it).

    AP is sklearn's documented formula sum_n (R_n - R_{n-1}) P_n on that curve.
    """
    mask_list, map_list = as_pairs(masks, maps)
    y, s = _flat_from_pairs(mask_list, map_list, maps)
    out = dict.fromkeys(("pixel_auroc", "pixel_ap", "pixel_f1max"), float("nan"))
    if not _one_class(y):
        out["pixel_auroc"], precision, recall = _roc_auc_and_pr(y, s)
        out["pixel_ap"] = float(-np.sum(np.diff(recall) * precision[:-1]))
        out["pixel_f1max"] = f1_max_from_pr(precision, recall)
    del y, s
    fpr_limit = _check_limit(fpr_limit)
    curve = _pro_curve(mask_list, map_list, fpr_limit)
    out["aupro"] = float("nan") if curve is None else _trapezoid(*curve, fpr_limit) / fpr_limit
    out["aupro_cflow200"] = aupro_cflow200(mask_list, map_list, fpr_limit)
    return out


def _roc_auc_and_pr(y: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """ROC AUC and the PR curve (precision, recall) of sklearn's ``roc_auc_score`` and
    ``precision_recall_curve``, from one sort of the scores instead of their two argsorts.

    Millions of pixels per category make this the metrics step's main cost. Every distinct
    score is a threshold; at threshold t, TP = positives scoring >= t (searchsorted in the
    sorted positive scores) and FP = all scores >= t minus TP. The PR arrays run by increasing
    threshold, then (precision 1, recall 0), as sklearn's. Tests check AUROC, AP and F1max
    against sklearn with ties.
    """
    ordered = np.sort(s)
    first = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    thresholds = ordered[first][::-1]  # distinct scores, descending
    at_least = (ordered.size - first)[::-1]  # pixels scoring >= each threshold
    del ordered
    positives = np.sort(s[y])
    tps = positives.size - np.searchsorted(positives, thresholds, side="left")
    fps = at_least - tps
    tpr = np.concatenate(([0.0], tps / tps[-1]))
    fpr = np.concatenate(([0.0], fps / fps[-1]))
    auroc = float(np.sum(0.5 * (tpr[1:] + tpr[:-1]) * np.diff(fpr)))
    precision = np.concatenate(((tps / at_least)[::-1], [1.0]))
    recall = np.concatenate(((tps / tps[-1])[::-1], [0.0]))
    return auroc, precision, recall


# --------------------------------------------------------------------------- official AUPRO


def _check_limit(fpr_limit: float) -> float:
    fpr_limit = float(fpr_limit)
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    return fpr_limit


def _pro_parts(mask_list, map_list):
    """Split pixels into ok pixels and region pixels (with weight 1/|region|), §10 steps 1-3."""
    ok_parts, reg_parts, w_parts = [], [], []
    n_regions = 0
    for mask, amap in zip(mask_list, map_list):
        lab, n = ndimage.label(mask, structure=_STRUCTURE_8)
        if n == 0:
            ok_parts.append(amap.ravel())
            continue
        n_regions += n
        inside = lab > 0
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        ok_parts.append(amap[~inside])
        reg_parts.append(amap[inside])
        w_parts.append(1.0 / sizes[lab[inside]])
    ok = np.concatenate(ok_parts)  # always a fresh copy: safe to sort in place
    if n_regions == 0:
        return ok, ok[:0], np.zeros(0), 0
    return ok, np.concatenate(reg_parts), np.concatenate(w_parts), n_regions


def _unique_sorted(a: np.ndarray) -> np.ndarray:
    if a.size == 0:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[-1] = True
    np.not_equal(a[1:], a[:-1], out=keep[:-1])
    return a[keep]


def _pro_curve(mask_list, map_list, fpr_limit: float | None):
    """Official PRO curve as (fpr, pro), or None when it is undefined (no regions / no ok pixel).

    Equivalent to MVTec's sort-descending + cumsum + keep-last-of-ties recipe: each kept point
    is a distinct score t with FPR = #ok(>= t)/#ok and PRO = sum of 1/|C| over region pixels
    >= t, / #regions. Computed with searchsorted on separately sorted ok and region scores,
    so the big array (ok pixels) is sorted in place and never argsorted. With ``fpr_limit`` the
    curve stops at the first point beyond the limit (enough to interpolate there), then (1, 1).
    """
    ok, reg, w, n_regions = _pro_parts(mask_list, map_list)
    n_ok = int(ok.size)
    if n_regions == 0 or n_ok == 0:
        return None
    ok.sort()
    order = np.argsort(reg, kind="stable")
    reg, w = reg[order], w[order]
    if fpr_limit is not None:
        # k0 = largest ok-pixel count whose FPR (count / n_ok, as float) is <= the limit.
        k0 = min(n_ok, int(np.floor(fpr_limit * n_ok)))
        while k0 > 0 and k0 / n_ok > fpr_limit:
            k0 -= 1
        while k0 < n_ok and (k0 + 1) / n_ok <= fpr_limit:
            k0 += 1
        if k0 < n_ok:
            # Scores above the (k0+1)-th largest ok score have FPR <= limit; that score itself is
            # the first point past the limit. Lower scores cannot affect the integral.
            t_star = ok[n_ok - 1 - k0]
            ok = ok[np.searchsorted(ok, t_star, side="left") :]
            lo = np.searchsorted(reg, t_star, side="left")
            reg, w = reg[lo:], w[lo:]
    thresholds = np.union1d(_unique_sorted(ok), _unique_sorted(reg))[::-1]  # descending
    n_fp = ok.size - np.searchsorted(ok, thresholds, side="left")
    n_tp = reg.size - np.searchsorted(reg, thresholds, side="left")
    cum_w = np.concatenate(([0.0], np.cumsum(w[::-1])))  # summed in descending-score order
    fpr = np.minimum(n_fp / n_ok, 1.0)
    pro = np.minimum(cum_w[n_tp] / n_regions, 1.0)
    return np.concatenate(([0.0], fpr, [1.0])), np.concatenate(([0.0], pro, [1.0]))


def _trapezoid(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Area under y(x) on [0, x_max], linearly interpolating at x_max (MVTec generic_util)."""
    correction = 0.0
    if not np.any(x == x_max):
        ins = int(np.searchsorted(x, x_max, side="right"))
        x0, x1, y0, y1 = x[ins - 1], x[ins], y[ins - 1], y[ins]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        correction = 0.5 * (y_at + y0) * (x_max - x0)
    keep = x <= x_max
    xs, ys = x[keep], y[keep]
    return float(np.sum(0.5 * (ys[1:] + ys[:-1]) * (xs[1:] - xs[:-1])) + correction)


def pro_curve(masks: Masks, maps: Maps) -> tuple[np.ndarray, np.ndarray]:
    """Full official PRO curve (fpr, pro), starting at (0, 0) and ending at (1, 1), for plots.

    Raises ValueError when undefined (no ground-truth region, or no normal pixel).
    """
    curve = _pro_curve(*as_pairs(masks, maps), None)
    if curve is None:
        raise ValueError("PRO curve undefined: no ground-truth region or no normal pixel")
    return curve


def aupro(masks: Masks, maps: Maps, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit``: the official MVTec AD AUPRO.

    Exactly METHODS.md §10 (Bergmann et al., IJCV 2021): 8-connected GT components over all
    images, ok pixels = every pixel outside them, every distinct score is a threshold (ties
    merged), trapezoid up to the limit with interpolation there, divided by the limit.
    This is the headline number. NaN when there is no GT region (or no normal pixel).
    """
    fpr_limit = _check_limit(fpr_limit)
    curve = _pro_curve(*as_pairs(masks, maps), fpr_limit)
    if curve is None:
        return float("nan")
    return _trapezoid(curve[0], curve[1], fpr_limit) / fpr_limit


# --------------------------------------------------------------------------- CFlow-200 variant


def aupro_cflow200(
    masks: Masks, maps: Maps, fpr_limit: float = 0.3, n_thresholds: int = 200
) -> float:
    """The research-code PRO (CFlow -> APRIL-GAN / AnomalyCLIP ``cal_pro_score``). NOT headline.

    Only for comparison with published tables; it disagrees with :func:`aupro`. Recipe:
    ``n_thresholds`` thresholds ``min + k*(max-min)/n`` (k = 0..n-1) over all maps; at each,
    pred = map > t, PRO = mean over 8-connected regions of overlap, FPR over GT-negative pixels;
    keep points with FPR < limit; rescale FPR to [0, 1] by (fpr - min) / (max - min); trapezoid.
    NaN when undefined (no region, constant maps, < 2 kept points or a constant kept FPR, e.g.
    a perfect map). Thresholds are float64 here (the original used the maps' dtype).
    """
    fpr_limit = _check_limit(fpr_limit)
    mask_list, map_list = as_pairs(masks, maps)
    lo = min(float(a.min()) for a in map_list)
    hi = max(float(a.max()) for a in map_list)
    if not hi > lo:
        return float("nan")
    k = int(n_thresholds)
    thresholds = lo + (hi - lo) / k * np.arange(k)
    fp_hist = np.zeros(k + 1, dtype=np.int64)
    region_tp, region_size = [], []
    for mask, amap in zip(mask_list, map_list):
        lab, n = ndimage.label(mask, structure=_STRUCTURE_8)
        lab = lab.ravel()
        # bins = number of thresholds strictly below the score: pixel > t_j  <=>  j < bins.
        bins = np.searchsorted(thresholds, amap.ravel(), side="left")
        fp_hist += np.bincount(bins[lab == 0], minlength=k + 1)
        if n:
            inside = lab > 0
            hist = np.bincount((lab[inside] - 1) * (k + 1) + bins[inside], minlength=n * (k + 1))
            hist = hist.reshape(n, k + 1)
            size = hist.sum(axis=1)
            region_tp.append(size[:, None] - np.cumsum(hist, axis=1)[:, :k])  # #pixels > t_j
            region_size.append(size)
    n_ok = int(fp_hist.sum())
    if not region_tp or n_ok == 0:
        return float("nan")
    tp = np.concatenate(region_tp)
    size = np.concatenate(region_size)
    pro = (tp / size[:, None]).mean(axis=0)
    fpr = (n_ok - np.cumsum(fp_hist)[:k]) / n_ok
    keep = fpr < fpr_limit
    f, p = fpr[keep], pro[keep]
    if f.size < 2 or f.max() == f.min():
        return float("nan")
    f = (f - f.min()) / (f.max() - f.min())
    f, p = f[::-1], p[::-1]  # thresholds ascending -> FPR descending; integrate left to right
    return float(np.sum(0.5 * (p[1:] + p[:-1]) * (f[1:] - f[:-1])))
