"""Metric tests: hand-computed cases and independent reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from iadbench.metrics import (
    aupro,
    aupro_cflow200,
    evaluate_category,
    f1_max,
    image_ap,
    image_auroc,
    macro_mean,
    micro_metrics,
    pixel_ap,
    pixel_auroc,
    pixel_f1_max,
    pixel_metrics,
    pro_curve,
    summarise,
    to_markdown,
)
from iadbench.metrics.image import f1_max_from_pr

# ------------------------------------------------------------------ references (tests only)


def _components_8(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """8-connected components by explicit flood fill (independent of scipy)."""
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    regions = []
    for r in range(h):
        for c in range(w):
            if mask[r, c] and not seen[r, c]:
                stack, region = [(r, c)], []
                seen[r, c] = True
                while stack:
                    y, x = stack.pop()
                    region.append((y, x))
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            yy, xx = y + dy, x + dx
                            if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                                seen[yy, xx] = True
                                stack.append((yy, xx))
                regions.append(region)
    return regions


def brute_force_aupro(masks, maps, fpr_limit):
    """Threshold at every unique score (pred = score >= t), loops over regions, np.interp."""
    regions = [(i, reg) for i, m in enumerate(masks) for reg in _components_8(np.asarray(m) > 0)]
    ok = [np.asarray(m) == 0 for m in masks]
    n_ok = sum(int(o.sum()) for o in ok)
    points = [(0.0, 0.0)]
    for t in sorted({float(v) for a in maps for v in np.ravel(a)}, reverse=True):
        overlaps = []
        for i, reg in regions:
            hit = sum(1 for (y, x) in reg if maps[i][y, x] >= t)
            overlaps.append(hit / len(reg))
        fp = sum(int(((maps[i] >= t) & ok[i]).sum()) for i in range(len(maps)))
        points.append((fp / n_ok, float(np.mean(overlaps))))
    points.append((1.0, 1.0))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x1 <= fpr_limit:
            area += 0.5 * (y0 + y1) * (x1 - x0)
        else:
            if x0 < fpr_limit:
                y_lim = float(np.interp(fpr_limit, [x0, x1], [y0, y1]))
                area += 0.5 * (y0 + y_lim) * (fpr_limit - x0)
            break
    return area / fpr_limit


def literal_official_aupro(masks, maps, fpr_limit):
    """Literal transcription of METHODS.md §10 steps 1-7 (fp_change/pro_change, full argsort)."""
    from scipy.ndimage import label

    fp_change = np.zeros((len(maps),) + maps[0].shape)
    pro_change = np.zeros_like(fp_change)
    n_ok = n_regions = 0
    for i, gt in enumerate(masks):
        lab, n = label(np.asarray(gt) > 0, structure=np.ones((3, 3)))
        n_regions += n
        fp_change[i][lab == 0] = 1
        n_ok += int((lab == 0).sum())
        for k in range(1, n + 1):
            pro_change[i][lab == k] = 1.0 / (lab == k).sum()
    scores = np.asarray(maps, dtype=float).ravel()
    order = np.argsort(-scores, kind="stable")
    scores = scores[order]
    fpr = np.cumsum(fp_change.ravel()[order]) / n_ok
    pro = np.cumsum(pro_change.ravel()[order]) / n_regions
    keep = np.append(np.diff(scores) != 0, True)
    fpr = np.concatenate(([0.0], np.minimum(fpr[keep], 1), [1.0]))
    pro = np.concatenate(([0.0], np.minimum(pro[keep], 1), [1.0]))
    area = 0.0
    if fpr_limit not in fpr:
        ins = int(np.searchsorted(fpr, fpr_limit, side="right"))
        y_at = np.interp(fpr_limit, fpr[ins - 1 : ins + 1], pro[ins - 1 : ins + 1])
        area = 0.5 * (y_at + pro[ins - 1]) * (fpr_limit - fpr[ins - 1])
    m = fpr <= fpr_limit
    x, y = fpr[m], pro[m]
    return (area + np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x))) / fpr_limit


def cflow_loop_reference(masks, maps, fpr_limit, steps=200):
    """APRIL-GAN cal_pro_score written as its loops (threshold loop, region loop)."""
    maps = np.asarray(maps, dtype=float)
    gts = np.asarray(masks) > 0
    lo, hi = maps.min(), maps.max()
    regions = [(i, reg) for i in range(len(gts)) for reg in _components_8(gts[i])]
    fprs, pros = [], []
    for k in range(steps):
        th = lo + (hi - lo) / steps * k
        pred = maps > th
        pros.append(np.mean([sum(pred[i][p] for p in reg) / len(reg) for i, reg in regions]))
        fprs.append((pred & ~gts).sum() / (~gts).sum())
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs < fpr_limit
    f = fprs[keep]
    f = (f - f.min()) / (f.max() - f.min())
    p = pros[keep]
    return -np.sum(0.5 * (p[1:] + p[:-1]) * np.diff(f))  # x decreasing, like sklearn.auc


def random_case(seed, n=3, h=7, w=8, levels=6):
    rng = np.random.default_rng(seed)
    masks = (rng.random((n, h, w)) < 0.2).astype(np.uint8)
    masks[-1] = 0  # one normal image
    maps = rng.integers(0, levels, size=(n, h, w)) / levels + 0.3 * masks * rng.random((n, h, w))
    return masks, maps


# ------------------------------------------------------------------ image metrics


def test_image_auroc_with_ties():
    # pairs (pos, neg): (0.5,0.1)=1, (0.5,0.5)=0.5, (0.9,0.1)=1, (0.9,0.5)=1 -> 3.5/4
    assert image_auroc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.875)


def test_image_ap_and_f1_by_hand():
    y, s = [0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]
    # t=0.9: P=1, R=1/2; t=0.5: P=2/3, R=1; t=0.1: P=1/2, R=1
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6; F1: 2/3, 0.8, 2/3 -> 0.8
    assert image_ap(y, s) == pytest.approx(5 / 6)
    assert f1_max(y, s) == pytest.approx(0.8)
    # best F1 at the top: t=0.9 -> P=1, R=1/2 (F1 2/3); t=0.2 -> P=2/4, R=1 (F1 2/3)
    # t=0.8 -> P=1/2, R=1/2 (F1 1/2); t=0.1 -> P=2/5 R=1 (F1 4/7) -> 2/3
    assert f1_max([1, 0, 0, 1, 0], [0.9, 0.8, 0.3, 0.2, 0.1]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("fn", [image_auroc, image_ap, f1_max])
def test_image_single_class_is_nan(fn):
    assert math.isnan(fn([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(fn([1, 1], [0.1, 0.2]))
    assert isinstance(fn([0, 1], [0.1, 0.2]), float)


def test_image_input_validation():
    with pytest.raises(ValueError, match="length"):
        image_auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN or Inf"):
        image_auroc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="NaN or Inf"):
        f1_max([0, 1], [np.inf, 0.2])
    with pytest.raises(ValueError, match="0/1"):
        image_ap([0, 2], [0.1, 0.2])


# ------------------------------------------------------------------ pixel metrics


def test_pixel_metrics_equal_sklearn_on_flattened():
    masks, maps = random_case(0)
    y, s = masks.ravel() > 0, maps.ravel()
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert pixel_ap(masks, maps) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    both = pixel_metrics(masks, maps)
    assert both["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert both["pixel_f1max"] == pytest.approx(pixel_f1_max(masks, maps), abs=1e-12)
    assert both["aupro"] == pytest.approx(aupro(masks, maps), abs=1e-12)


@pytest.mark.parametrize("levels", [None, 9, 2])
def test_pixel_metrics_one_sort_equals_sklearn_with_ties(levels):
    """pixel_metrics sorts the scores once; sklearn's two curves are the reference."""
    rng = np.random.default_rng(levels or 0)
    maps = rng.random((6, 20, 30)).astype(np.float32)
    if levels:  # ties: few distinct scores, as quantised or saturated maps have
        maps = np.round(maps * levels) / levels
    masks = rng.random(maps.shape) < 0.2 * maps + 0.02
    y, s = masks.ravel(), maps.ravel()
    got = pixel_metrics(masks, maps)
    precision, recall, _ = precision_recall_curve(y, s)
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert got["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert got["pixel_f1max"] == pytest.approx(f1_max_from_pr(precision, recall), abs=1e-12)


def test_pixel_lists_of_different_sizes_and_none_masks():
    rng = np.random.default_rng(1)
    maps = [rng.random((4, 5)), rng.random((3, 6)).astype(np.float32), rng.random((2, 2))]
    masks = [rng.random((4, 5)) < 0.3, None, np.zeros((2, 2))]
    masks[0][0, 0] = True
    y = np.concatenate([masks[0].ravel(), np.zeros(18, bool), np.zeros(4, bool)])
    s = np.concatenate([m.ravel().astype(float) for m in maps])
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(y, s), abs=1e-7)


def test_pixel_shape_mismatch_names_index_and_shapes():
    maps = [np.zeros((4, 4)), np.zeros((4, 4))]
    masks = [np.zeros((4, 4)), np.zeros((4, 5))]
    with pytest.raises(ValueError, match=r"image 1.*\(4, 5\).*\(4, 4\)"):
        pixel_auroc(masks, maps)
    with pytest.raises(ValueError, match="number of masks"):
        aupro(masks[:1], maps)
    with pytest.raises(ValueError, match="image 0: map contains NaN"):
        aupro([np.ones((2, 2))], [np.full((2, 2), np.nan)])


def test_pixel_metrics_nan_without_anomalies():
    masks, maps = np.zeros((2, 4, 4)), np.random.default_rng(2).random((2, 4, 4))
    for fn in (pixel_auroc, pixel_ap, pixel_f1_max, aupro, aupro_cflow200):
        assert math.isnan(fn(masks, maps))


def test_masks_01_and_0255_identical():
    masks, maps = random_case(3)
    for fn in (pixel_auroc, pixel_ap, pixel_f1_max, aupro, aupro_cflow200):
        assert fn(masks, maps) == fn(masks * 255, maps)


# ------------------------------------------------------------------ AUPRO (official)


def test_aupro_constant_map_all_ties():
    # one tie run: curve (0,0) -> (1,1) -> (1,1); area to 0.3 = 0.3*0.3/2; / 0.3 = 0.15
    masks, _ = random_case(4)
    maps = np.full(masks.shape, 0.7)
    assert aupro(masks, maps) == pytest.approx(0.15, abs=1e-12)
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx(0.5, abs=1e-12)


def test_aupro_perfect_map_is_one():
    masks, _ = random_case(5)
    assert aupro(masks, masks.astype(float)) == pytest.approx(1.0, abs=1e-12)


def test_aupro_single_pixel_region():
    # 4x4: region = one pixel (score 0.5); one ok pixel 0.9, 14 ok pixels 0.0 (n_ok = 15).
    # curve: (0,0), (1/15, 0) [0.9], (1/15, 1) [0.5], (1, 1) [0.0], (1, 1)
    # area to 0.3 = (0.3 - 1/15) * 1; / 0.3 = 1 - 2/9 = 7/9
    mask = np.zeros((1, 4, 4))
    mask[0, 2, 1] = 1
    amap = np.zeros((1, 4, 4))
    amap[0, 2, 1], amap[0, 0, 3] = 0.5, 0.9
    assert aupro(mask, amap) == pytest.approx(7 / 9, abs=1e-12)


def test_aupro_diagonal_touch_is_one_component():
    # 3x3, GT pixels (0,0),(0,1) and (1,2); (1,2) touches (0,1) only diagonally.
    # 8-connectivity: one region of 3 px, each pixel adds 1/3. (1,2) scores 0.9, the two others
    # 0.1, ok pixels 0.5: curve (0,0),(0,1/3),(1,1/3),(1,1) -> AUPRO@0.3 = 1/3.
    # 4-connectivity would give regions {2 px, 1 px}: (1,2) alone gives PRO 1/2 -> 0.5.
    mask = np.zeros((1, 3, 3), dtype=np.uint8)
    mask[0, 0, 0] = mask[0, 0, 1] = mask[0, 1, 2] = 1
    amap = np.full((1, 3, 3), 0.5)
    amap[0, 0, 0] = amap[0, 0, 1] = 0.1
    amap[0, 1, 2] = 0.9
    assert aupro(mask, amap) == pytest.approx(1 / 3, abs=1e-12)
    # Control: move the lone pixel to (2,2), no contact -> two regions -> 0.5.
    mask2, amap2 = mask.copy(), amap.copy()
    mask2[0, 1, 2], mask2[0, 2, 2] = 0, 1
    amap2[0, 1, 2], amap2[0, 2, 2] = 0.5, 0.9
    assert aupro(mask2, amap2) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        # one 3x4 image; region (0,0),(0,1) scores 0.9 / 0.6; ok: 0.8, 0.5 and 8 x 0.1 (n_ok 10)
        # curve: (0,0) (0,.5)[0.9] (.1,.5)[0.8] (.1,1)[0.6] (.2,1)[0.5] (1,1)[0.1] (1,1)
        (0.05, 0.5),  # 0.05 * 0.5 / 0.05
        (0.3, 0.25 / 0.3),  # 0.1*0.5 + 0.1*1 + 0.1*1 = 0.25
        (1.0, 0.95),  # 0.1*0.5 + 0.9*1
    ],
)
def test_aupro_fpr_limits_by_hand(limit, expected):
    mask = np.zeros((1, 3, 4))
    mask[0, 0, :2] = 1
    amap = np.full((1, 3, 4), 0.1)
    amap[0, 0, 0], amap[0, 0, 1], amap[0, 1, 0], amap[0, 2, 3] = 0.9, 0.6, 0.8, 0.5
    assert aupro(mask, amap, fpr_limit=limit) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_aupro_matches_brute_force(seed, limit):
    masks, maps = random_case(seed, levels=4 + seed)
    expected = brute_force_aupro(masks, maps, limit)
    assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("limit", [0.01, 0.05, 0.3, 0.5, 1.0])
def test_aupro_matches_literal_official_steps(seed, limit):
    rng = np.random.default_rng(100 + seed)
    masks = np.zeros((5, 30, 40), dtype=np.uint8)
    for i in range(4):
        r, c = rng.integers(0, 25), rng.integers(0, 35)
        masks[i, r : r + rng.integers(1, 6), c : c + rng.integers(1, 6)] = 255
    masks[1, 0, 0] = 255  # a single-pixel region
    maps = rng.normal(size=masks.shape) + (masks > 0) * rng.uniform(0, 2)
    if seed % 2:
        maps = np.round(maps, 1)  # many ties
    expected = literal_official_aupro(masks, maps, limit)
    assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(expected, abs=1e-9)


def test_aupro_float32_maps_and_lists():
    masks, maps = random_case(11, h=9, w=9, levels=50)
    maps32 = maps.astype(np.float32)
    expected = brute_force_aupro(masks, maps32, 0.3)
    assert aupro(list(masks), list(maps32)) == pytest.approx(expected, abs=1e-9)


def test_pro_curve_endpoints_and_limit_validation():
    masks, maps = random_case(6)
    fpr, pro = pro_curve(masks, maps)
    assert (fpr[0], pro[0], fpr[-1], pro[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(masks, maps, fpr_limit=0.0)


# ------------------------------------------------------------------ AUPRO (CFlow-200 variant)


def test_aupro_cflow200_by_hand():
    # 3x4 image, min 0 / max 1; region (0,0)=1.0,(0,1)=0.501; ok: 0.251, 0.751, 8 x 0 (n_ok 10).
    # Thresholds k/200: FPR .2 (t<.251), .1 (t<.751), 0; PRO 1 (t<.501), .5. All FPR < 0.3.
    # Rescaled FPR 1, .5, 0: area = .5*.5 (pro .5 on [0,.5]) + .5*1 (pro 1 on [.5,1]) = .75
    mask = np.zeros((1, 3, 4))
    mask[0, 0, :2] = 1
    amap = np.zeros((1, 3, 4))
    amap[0, 0, 0], amap[0, 0, 1], amap[0, 1, 1], amap[0, 2, 2] = 1.0, 0.501, 0.251, 0.751
    assert aupro_cflow200(mask, amap) == pytest.approx(0.75, abs=1e-12)
    assert aupro(mask, amap) != pytest.approx(0.75)  # a different number


@pytest.mark.parametrize("seed", range(4))
def test_aupro_cflow200_matches_loop_reference(seed):
    rng = np.random.default_rng(200 + seed)
    masks = (rng.random((3, 12, 12)) < 0.1).astype(np.uint8)
    maps = rng.random((3, 12, 12)) + masks * 0.3
    expected = cflow_loop_reference(masks, maps, 0.3)
    assert aupro_cflow200(masks, maps) == pytest.approx(expected, abs=1e-9)


def test_aupro_cflow200_degenerate_is_nan():
    masks, _ = random_case(7)
    assert math.isnan(aupro_cflow200(masks, np.full(masks.shape, 0.2)))  # constant map
    assert math.isnan(aupro_cflow200(masks, masks.astype(float)))  # perfect: all kept FPR = 0


# ------------------------------------------------------------------ evaluate_category

KEYS = {
    "image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max",
    "aupro", "aupro_cflow200", "fpr_limit", "n_images", "n_anomalous", "n_normal",
    "n_pixel_images", "eval_height", "eval_width",
}  # fmt: skip


def test_evaluate_category_full():
    masks, maps = random_case(8)
    labels = (masks.reshape(len(masks), -1).max(axis=1) > 0).astype(int)
    scores = maps.reshape(len(maps), -1).max(axis=1)
    row = evaluate_category(labels, scores, masks, maps)
    assert set(row) == KEYS
    assert row["aupro"] == pytest.approx(aupro(masks, maps))
    assert row["pixel_auroc"] == pytest.approx(pixel_auroc(masks, maps))
    assert (row["n_images"], row["n_anomalous"], row["n_normal"]) == (3, 2, 1)
    assert (row["eval_height"], row["eval_width"], row["fpr_limit"]) == (7, 8, 0.3)


def test_pixel_subset_limits_pixel_metrics_to_images_with_ground_truth():
    masks, maps = random_case(8)
    labels = (masks.reshape(len(masks), -1).max(axis=1) > 0).astype(int)
    scores = maps.reshape(len(maps), -1).max(axis=1)
    keep = np.array([True, False, True])
    row = evaluate_category(labels, scores, masks, maps, pixel_subset=keep)
    assert row["aupro"] == pytest.approx(aupro(masks[keep], maps[keep]))
    assert row["pixel_auroc"] == pytest.approx(pixel_auroc(masks[keep], maps[keep]))
    assert row["image_auroc"] == evaluate_category(labels, scores, masks, maps)["image_auroc"]
    assert (row["n_images"], row["n_pixel_images"]) == (3, 2)


def test_evaluate_category_without_anomalies_or_masks():
    maps = np.random.default_rng(9).random((3, 5, 5))
    row = evaluate_category([0, 0, 0], [0.1, 0.2, 0.3], np.zeros((3, 5, 5)), maps)
    assert set(row) == KEYS
    for key in ("image_auroc", "pixel_auroc", "aupro", "pixel_f1max"):
        assert math.isnan(row[key])
    row = evaluate_category([0, 1], [0.1, 0.9], None, [np.zeros((4, 4)), np.zeros((3, 4))])
    assert row["image_auroc"] == 1.0 and math.isnan(row["aupro"])
    assert row["eval_height"] is None and row["eval_width"] is None


# ------------------------------------------------------------------ aggregation


def _two_categories():
    # A: normal 0.0/0.1, anomalous 0.2/0.3; B: normal 0.5/0.6, anomalous 0.7/0.8.
    # Each category alone: AUROC 1. Pooled: positives .2,.3 beat only A's 2 negatives each,
    # .7,.8 beat all 4 -> (2+2+4+4)/16 = 0.75.
    labels = [np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])]
    scores = [np.array([0.0, 0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.7, 0.8])]
    masks, maps = [], []
    for s in scores:
        m = np.zeros((4, 2, 2))
        m[2:, 0, 0] = 1
        masks.append(m)
        maps.append(np.broadcast_to(s[:, None, None], (4, 2, 2)).copy())
    return labels, scores, masks, maps


def test_micro_differs_from_macro():
    labels, scores, masks, maps = _two_categories()
    rows = [
        {"dataset": "d", "method": "m", "category": c, **evaluate_category(y, s, mk, mp)}
        for c, y, s, mk, mp in zip(["a", "b"], labels, scores, masks, maps)
    ]
    per_cat = pd.DataFrame(rows)
    micro = micro_metrics(labels, scores, masks, maps, 0.3)
    assert micro["image_auroc"] == pytest.approx(0.75)
    assert macro_mean(per_cat, ["image_auroc"])["image_auroc"] == pytest.approx(1.0)
    assert micro["n_images"] == 8
    assert math.isnan(micro_metrics(labels, scores, [masks[0], None], maps, 0.3)["aupro"])


def test_macro_mean_ignores_nan():
    df = pd.DataFrame({"image_auroc": [0.9, np.nan, 0.7], "aupro": [np.nan, np.nan, np.nan]})
    out = macro_mean(df, ["image_auroc", "aupro"])
    assert out["image_auroc"] == pytest.approx(0.8)
    assert math.isnan(out["aupro"])


def test_summarise_labels_and_orders_rows():
    per_cat = pd.DataFrame(
        {
            "dataset": ["mvtec", "mvtec", "visa", "mvtec"],
            "method": ["pc", "pc", "pc", "pc"],
            "category": ["screw", "bottle", "pcb1", "zipper"],
            "image_auroc": [0.8, 1.0, 0.9, np.nan],
            "n_images": [10, 20, 5, 4],
            "fpr_limit": [0.3, 0.3, 0.3, 0.3],
        }
    )
    micro = pd.DataFrame(
        {"dataset": ["mvtec"], "method": ["pc"], "category": ["micro"], "image_auroc": [0.7],
         "n_images": [34], "fpr_limit": [0.3]}
    )  # fmt: skip
    out = summarise(per_cat, micro)
    assert list(out.columns[:4]) == ["dataset", "method", "category", "average"]
    assert list(out["category"]) == ["bottle", "screw", "zipper", "macro_mean", "micro", "pcb1",
                                     "macro_mean"]  # fmt: skip
    assert list(out["average"]) == ["per_category"] * 3 + ["macro", "micro", "per_category",
                                                           "macro"]  # fmt: skip
    macro = out[(out["dataset"] == "mvtec") & (out["average"] == "macro")].iloc[0]
    assert macro["image_auroc"] == pytest.approx(0.9)  # NaN category ignored
    assert macro["n_images"] == 34 and macro["fpr_limit"] == 0.3
    md = to_markdown(out)
    assert "**macro_mean**" in md and "**micro**" in md and "0.9000" in md and "n/a" in md
    with pytest.raises(ValueError, match="macro_mean"):
        summarise(out[out["average"] != "per_category"].drop(columns="average"))


def test_a_centre_crop_that_cuts_defects_is_reported(tmp_path, caplog):
    import logging

    from iadbench.data.images import Geometry
    from iadbench.pipeline.evaluation import crop_losses, ground_truth

    mask = np.zeros((40, 40), np.uint8)
    mask[0:10, 15:25] = 255  # a defect at the top border: a 40 -> 20 centre crop cuts all of it
    mask[18:22, 18:22] = 255  # and one in the middle, kept
    path = tmp_path / "m.png"
    from PIL import Image

    Image.fromarray(mask).save(path)
    manifest = pd.DataFrame(
        {"sample_id": ["a", "b"], "mask_path": [str(path), None], "note": ["", ""]}
    )
    cut: list[int] = []
    masks, _ = ground_truth(manifest[["sample_id"]], manifest, Geometry(40, 20), 0, cut)
    assert cut == [100] and masks[0].sum() == 16
    with caplog.at_level(logging.WARNING):
        losses = crop_losses(cut, masks, "x")
    assert losses == {"masks_cut": 1, "mask_pixels_cut": pytest.approx(100 / 116)}
    assert "removes defect pixels from 1 of 1 masks" in caplog.text
    assert crop_losses([0], masks, "x")["masks_cut"] == 0
