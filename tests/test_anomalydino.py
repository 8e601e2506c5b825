"""AnomalyDINO (METHODS §5.1): each step against a hand computation, then fit/score end to end
on a tiny random DINOv2-layout ViT with the store's smaller-edge token geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_png

from iadbench.errors import ConfigError
from iadbench.methods.anomalydino.method import reference_slice
from iadbench.methods.anomalydino.ops import (
    ANGLES,
    augment,
    first_component,
    foreground_mask,
    mean_top1p,
    nearest_cosine,
)


def test_mean_top1p_is_the_mean_of_the_largest_hundredth():
    d = np.zeros(250)  # int(250 * 0.01) = 2 patches
    d[[3, 7, 9]] = [0.9, 0.5, 0.4]
    assert mean_top1p(d) == pytest.approx((0.9 + 0.5) / 2)
    few = np.zeros(50)  # fewer than 100 patches: the maximum
    few[[1, 2]] = [0.3, 0.2]
    assert mean_top1p(few) == pytest.approx(0.3)


def test_nearest_cosine_matches_hand_distances():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    query = torch.tensor([[0.6, 0.8]])  # cosines 0.6, 0.8, -0.6 -> distances 0.4, 0.2, 1.6
    assert nearest_cosine(query, bank, k=1).item() == pytest.approx(0.2)
    assert nearest_cosine(query, bank, k=2).item() == pytest.approx(0.3)
    # block-wise scanning of the bank keeps the same k best
    assert nearest_cosine(query, bank, k=2, columns=1).item() == pytest.approx(0.3)
    assert nearest_cosine(bank[:1], bank, k=1).item() == 0.0  # never negative


def test_first_component_takes_scikit_learns_sign():
    t = np.arange(6, dtype=np.float64)
    axis = np.array([0.6, -0.8])  # largest magnitude entry negative -> the axis is flipped
    scores = first_component(t[:, None] * axis[None, :])
    np.testing.assert_allclose(scores, -(t - t.mean()), atol=1e-9)


def _centre_grid(centre_value: float, rest_value: float) -> np.ndarray:
    """20x20 first-component scores whose object fills the centre test's window, rows/cols
    int(20 * 0.2) = 4 to int(20 * 0.8) = 16."""
    pc = np.full((20, 20), rest_value)
    pc[4:16, 4:16] = centre_value
    return pc.ravel()


def test_foreground_mask_flips_the_sign_when_the_centre_is_background():
    expected = np.zeros((20, 20), bool)
    expected[3:17, 3:17] = True  # the 12x12 object dilated by the 3x3 kernel; closing keeps it
    # object on the positive side: kept as is
    np.testing.assert_array_equal(foreground_mask(_centre_grid(20, -20), (20, 20)), expected)
    # object on the negative side: pc > 10 keeps none of the centre, so the sign flips
    np.testing.assert_array_equal(foreground_mask(_centre_grid(-20, 20), (20, 20)), expected)


def test_foreground_mask_flip_threshold_is_at_most_35_percent_of_the_centre():
    pc = np.zeros((10, 10))
    centre = [(r, c) for r in range(2, 8) for c in range(2, 8)]  # 36 cells; 35 % = 12.6
    for r, c in centre[:12]:
        pc[r, c] = 20
    # 12 of 36 kept: flipped, and nothing is below -10 -> empty mask
    assert not foreground_mask(pc.ravel(), (10, 10)).any()
    pc[centre[12]] = 20  # 13 of 36: kept as is
    mask = foreground_mask(pc.ravel(), (10, 10))
    assert mask[2, 2] and mask[3, 2] and not mask[9, 9]


def test_rotation_augmentation_makes_8_copies_starting_with_the_original():
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), np.uint8)
    copies = augment(rgb, True)
    assert ANGLES == (0, 45, 90, 135, 180, 225, 270, 315)
    assert len(copies) == 8 and all(c.shape == rgb.shape for c in copies)
    np.testing.assert_array_equal(copies[0], rgb)
    assert len({c.tobytes() for c in copies}) == 8
    assert len(augment(rgb, False)) == 1


def test_reference_slice_takes_seed_times_k_of_the_sorted_paths():
    paths = ["c.png", "a.png", "d.png", "b.png", "f.png", "e.png"]
    # sorted: a b c d e f; shots 2, seed 1 -> c, d (positions 0 and 2 in the given order)
    assert reference_slice(paths, 2, 1) == [0, 2]
    assert reference_slice(paths, 3, 1) == [2, 5, 4]  # d, e, f
    with pytest.raises(ConfigError, match="shots 4 with seed 1"):
        reference_slice(paths, 4, 1)


def test_backbone_entry_must_give_unaggregated_vit_tokens():
    from iadbench.methods.anomalydino.params import AnomalyDinoParams

    params = AnomalyDinoParams.from_entry({"kind": "anomalydino", "backbone": "b"})
    params.check_backbone({"model": "dinov2_tiny", "patch_size": 1, "dim": None})
    with pytest.raises(ConfigError, match="patch_size: 1"):
        params.check_backbone({"model": "dinov2_tiny", "patch_size": 3, "dim": None})
    with pytest.raises(ConfigError, match="not a ViT"):
        params.check_backbone({"model": "resnet18", "patch_size": 1, "dim": None})
    assert params.masks("screw") and params.masks("pcb1") and not params.masks("bottle")
    listed = AnomalyDinoParams.from_entry(
        {"kind": "anomalydino", "backbone": "b", "masking": ["x"]}
    )
    assert listed.masks("x") and not listed.masks("screw")


# --- fit and score on a tiny random ViT ---------------------------------------------------------

BACKBONE = {
    "model": "dinov2_tiny",
    "weights": "random",
    "patch_size": 1,
    "token_norm": True,
    "smaller_edge": 56,
}
GEOMETRY = {"resize": 48, "crop": 40, "mask_threshold": 0}


def _rows(tmp_path: Path) -> pd.DataFrame:
    """5 train and 3 test images of 40x50 px (56 px smaller edge -> 56x70 -> a 4x5 grid)."""
    rng = np.random.default_rng(1)
    rows = []
    for split, n in (("train", 5), ("test", 3)):
        for i in range(n):
            path = write_png(
                tmp_path / split / f"{i:02d}.png", rng.integers(0, 255, (40, 50, 3), np.uint8)
            )
            label = int(split == "test" and i == 2)
            rows.append(
                dict(
                    sample_id=f"{split}{i}",
                    category="widget",
                    split=split,
                    label=label,
                    defect_type="dent" if label else "good",
                    image_path=str(path),
                    mask_path=None,
                )
            )
    return pd.DataFrame(rows)


def _brute_force(bank: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numpy reference: full cosine matrix, 1-NN distance per patch, mean of the top 1 %."""
    b = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    out_d, out_s = [], []
    for tokens in test:
        q = tokens.reshape(-1, tokens.shape[-1])
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = np.clip(1 - q @ b.T, 0, None).min(axis=1)
        out_d.append(d)
        out_s.append(d.max())  # 20 patches < 100: the maximum
    return np.array(out_d), np.array(out_s)


def test_fit_and_score_on_a_tiny_vit(tmp_path):
    from iadbench.features.extract import FeatureConfig, extract_features, patch_features
    from iadbench.features.store import load_features
    from iadbench.methods import build_method
    from iadbench.methods.anomalydino.ops import rotate
    from iadbench.methods.base import MethodInputs

    rows = _rows(tmp_path)
    cfg = FeatureConfig.from_config(BACKBONE, GEOMETRY)
    stores = {}
    for split in ("train", "test"):
        npy, idx = tmp_path / f"{split}.npy", tmp_path / f"{split}.parquet"
        extract_features(rows, "widget", split, cfg, npy, idx, device="cpu")
        stores[split] = load_features(npy, idx, expect_hash=cfg.hash())
    assert stores["train"].features.shape == (5, 4, 5, 32)  # 56x70 px -> 4x5 tokens of width 32
    assert stores["train"].meta["smaller_edge"] == 56

    entry = {"kind": "anomalydino", "backbone": "b", "shots": 2, "seed": 1, "masking": False}
    method = build_method(entry, device="cpu")
    train = MethodInputs(
        stores["train"].index, stores["train"], dataset=GEOMETRY, backbone=BACKBONE
    )
    state = method.fit(train, tmp_path)
    assert state["references"] == ["train2", "train3"]  # sorted paths 02, 03 (seed 1 x 2 shots)
    assert state["copies"] == 16 and state["bank_size"] == 2 * 8 * 20

    # the bank, rebuilt independently: stored tokens of each reference, then its rotated copies
    backbone = cfg.load_backbone(torch.device("cpu"))
    from iadbench.data.images import load_image

    parts = []
    for i in (2, 3):
        rgb = load_image(rows.loc[rows.sample_id == f"train{i}", "image_path"].item())
        images = [cfg.image(rotate(rgb, a), backbone.patch) for a in ANGLES]
        feats, _ = patch_features(backbone, images, cfg, torch.device("cpu"))
        np.testing.assert_array_equal(feats[0], stores["train"].features[i])
        parts.append(feats.astype(np.float32).reshape(-1, 32))
    bank = np.concatenate(parts)
    np.testing.assert_array_equal(np.load(tmp_path / "bank.npy").astype(np.float32), bank)

    test = MethodInputs(stores["test"].index, stores["test"], dataset=GEOMETRY)
    scores, maps = method.score(tmp_path, test, (40, 40))
    dists, expected = _brute_force(bank, np.asarray(stores["test"].features, dtype=np.float32))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    assert maps.shape == (3, 40, 40) and maps.dtype == np.float32
    # the map: 4x5 grid -> 48x48 (the whole image at resize), blurred, centre crop 40x40
    from scipy.ndimage import gaussian_filter

    grid = torch.from_numpy(dists[0].reshape(1, 1, 4, 5).astype(np.float32))
    full = torch.nn.functional.interpolate(grid, size=(48, 48), mode="bilinear")[0, 0].numpy()
    np.testing.assert_allclose(maps[0], gaussian_filter(full, 4)[4:44, 4:44], rtol=1e-5, atol=1e-6)
    # the latency step times the same path from decoded images (one at a time)
    seconds = method.latency(tmp_path, rows[rows.split == "test"], GEOMETRY, BACKBONE)
    assert seconds.shape == (3,) and (seconds > 0).all()


def test_masked_background_scores_zero():
    """With masking on, patches outside the PCA foreground get distance 0 in the map."""
    from iadbench.features.store import FeatureSet
    from iadbench.methods.anomalydino.method import AnomalyDino, keep_foreground

    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(16, 16, 8)).astype(np.float32)
    tokens[5:11, 5:11] += 40 * np.linspace(-1, 1, 8)  # a strong object direction in the centre
    keep = keep_foreground(tokens)
    assert keep.reshape(16, 16)[5:11, 5:11].all() and not keep.reshape(16, 16)[0].any()
    bank = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(10, 8))).float(), dim=1)
    test = FeatureSet(tokens[None].astype(np.float16), pd.DataFrame({"sample_id": ["a"]}), {})
    unblurred = AnomalyDino({"kind": "anomalydino", "backbone": "b", "sigma": 0}, "cpu")
    scores, raw = unblurred._score(test, bank, True, {}, (16, 16))
    assert (raw[0].ravel()[~keep] == 0).all() and (raw[0].ravel()[keep] > 0).all()
    assert scores[0] == pytest.approx(np.sort(raw[0].ravel())[-2:].mean(), rel=1e-5)


def test_token_options_are_for_vits_and_one_image_shape_per_store(tmp_path):
    from iadbench.errors import CacheError
    from iadbench.features.extract import FeatureConfig, extract_features

    with pytest.raises(ConfigError, match="token_norm is for ViT"):
        FeatureConfig(model="resnet18", token_norm=True)
    with pytest.raises(ConfigError, match="smaller_edge is for ViT"):
        FeatureConfig(model="resnet18", smaller_edge=448)
    rows = _rows(tmp_path).query("split == 'test'").reset_index(drop=True)
    wide = np.zeros((40, 80, 3), np.uint8)  # 56 px smaller edge -> 112 wide, not 70
    rows.loc[1, "image_path"] = str(write_png(tmp_path / "wide.png", wide))
    cfg = FeatureConfig.from_config(BACKBONE, GEOMETRY)
    with pytest.raises(CacheError, match="wide.png: 112x56 px"):
        extract_features(rows, "widget", "test", cfg, tmp_path / "t.npy", tmp_path / "t.parquet")


def test_smaller_edge_vit_resamples_the_position_grid_bicubic_without_antialias():
    """The DINOv2 hub's and anomalib's resampling of the 16x16 grid (dinov2_tiny at 224 px) to a
    6x9 grid: ``F.interpolate(bicubic, antialias=False)`` of the patch positions, written out
    here; ``interpolation: bicubic_antialias`` is timm's default and differs."""
    import torch.nn.functional as F

    from iadbench.features.extract import FeatureConfig

    cfg = FeatureConfig(model="dinov2_tiny", weights="random", token_norm=True, smaller_edge=84)
    assert cfg.identity()["pos_embed"] == "bicubic"
    vit = cfg.load_backbone(torch.device("cpu")).model
    pos = vit.pos_embed.detach()  # (1, 1 + 16*16, 32): the class position first
    grid = pos[0, 1:].reshape(16, 16, 32).permute(2, 0, 1)[None]
    by_hand = F.interpolate(grid, size=(6, 9), mode="bicubic", align_corners=False, antialias=False)
    expected = torch.cat([pos[0, :1], by_hand[0].permute(1, 2, 0).reshape(54, 32)])
    with torch.no_grad():  # zero patch tokens: the output is the class token plus positions
        out = vit._pos_embed(torch.zeros(1, 6, 9, 32))[0]
    cls = vit.cls_token.detach()[0, 0]
    torch.testing.assert_close(out - torch.cat([cls[None], torch.zeros(54, 32)]), expected)
    smooth = FeatureConfig(
        model="dinov2_tiny", weights="random", smaller_edge=84, interpolation="bicubic_antialias"
    )
    assert smooth.hash() != cfg.hash()
    with torch.no_grad():
        other = smooth.load_backbone(torch.device("cpu")).model._pos_embed(torch.zeros(1, 6, 9, 32))
    assert (other[0] - out).abs().max() > 1e-3  # the switch matters on a downsampled grid
    with pytest.raises(ConfigError, match="interpolation 'nearest' with smaller_edge"):
        FeatureConfig(model="dinov2_tiny", smaller_edge=84, interpolation="nearest")
    # CNN caches keep their identity keys
    assert "pos_embed" not in FeatureConfig(model="resnet18", weights="random").identity()
