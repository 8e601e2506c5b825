"""FE-CLIP's adapters and the trained CLIP heads (tiny random CLIP, CPU, a few steps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn
from scipy.special import erf

from iadbench.clip.encoder import load_clip
from iadbench.methods.april_gan.method import AprilGan
from iadbench.methods.fe_clip.adapters import (
    FFE,
    LFS,
    FrequencyAdapter,
    dct_matrix,
    window_dct,
)
from iadbench.methods.fe_clip.method import FeClip
from iadbench.training import TrainConfig
from iadbench.training.optim import build_optimizer


@pytest.mark.parametrize("n", [1, 3, 4])
def test_dct_matrix_is_orthonormal(n):
    c = dct_matrix(n, torch.float64)
    assert torch.allclose(c @ c.T, torch.eye(n, dtype=torch.float64), atol=1e-12)


def test_ffe_with_identity_mlp_returns_its_input_cropping_included():
    ffe = FFE(dim=5, p=3)
    ffe.mlp = torch.nn.Identity()
    grid = torch.randn(2, 7, 8, 5, dtype=torch.float64)  # neither side a multiple of 3
    assert torch.allclose(ffe(grid), grid, atol=1e-12)


def test_dct_of_a_constant_window_is_zero_but_dc():
    grid = torch.full((1, 5, 5, 2), 3.0, dtype=torch.float64)
    coeff = window_dct(grid, 3)  # (B, D, Q, Q, H, W)
    assert torch.allclose(coeff[:, :, 0, 0], torch.full_like(coeff[:, :, 0, 0], 9.0))
    rest = coeff.clone()
    rest[:, :, 0, 0] = 0
    assert rest.abs().max() < 1e-12


def test_lambda_zero_adapter_is_the_identity():
    grid = torch.randn(1, 4, 4, 8)
    assert torch.equal(FrequencyAdapter(8, 3, 3, "signed", 0.0)(grid), grid)


# --- the adapters against hand computations (numpy/scipy, float64) --------------------------------


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _ffe_by_hand(f, weight, bias, p):
    """(H, W, D): edge-pad bottom/right to multiples of P, orthonormal 2-D DCT-II of every P×P
    window and channel, GELU(W·v + b) over channels at every frequency, inverse DCT, crop."""
    h, w, _ = f.shape
    x = np.pad(f, ((0, -h % p), (0, -w % p), (0, 0)), mode="edge")
    out = np.empty_like(x)
    for y0 in range(0, x.shape[0], p):
        for x0 in range(0, x.shape[1], p):
            block = x[y0 : y0 + p, x0 : x0 + p]
            coeff = dctn(block, type=2, norm="ortho", axes=(0, 1))
            mixed = _gelu(coeff @ weight.T + bias)
            out[y0 : y0 + p, x0 : x0 + p] = idctn(mixed, type=2, norm="ortho", axes=(0, 1))
    return out[:h, :w]


def _lfs_by_hand(f, weight, bias, q, stat):
    """(H, W, D): the statistic of the orthonormal DCT of the Q×Q edge-padded window centred on
    each token, then a zero-padded 3×3 cross-correlation plus bias and GELU."""
    h, w, d = f.shape
    x = np.pad(f, ((q // 2, q // 2), (q // 2, q // 2), (0, 0)), mode="edge")
    reduce = {"signed": lambda c: c, "abs": np.abs, "power": np.square}[stat]
    stats = np.empty((h, w, d))
    for y in range(h):
        for xx in range(w):
            coeff = dctn(x[y : y + q, xx : xx + q], type=2, norm="ortho", axes=(0, 1))
            stats[y, xx] = reduce(coeff).mean(axis=(0, 1))
    padded = np.pad(stats, ((1, 1), (1, 1), (0, 0)))
    out = np.empty((h, w, d))
    for y in range(h):
        for xx in range(w):
            patch = padded[y : y + 3, xx : xx + 3]  # (3, 3, D_in)
            out[y, xx] = bias + np.einsum("oiyx,yxi->o", weight, patch)
    return _gelu(out)


def _grid(h, w, d, seed=0):
    return torch.randn(
        1, h, w, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("shape", [(3, 3), (4, 5)])  # one exact window; padding and cropping
def test_ffe_equals_blockwise_dct_mlp_inverse_dct_by_hand(shape):
    torch.manual_seed(0)
    ffe = FFE(dim=2, p=3).double()
    grid = _grid(*shape, 2)
    lin = ffe.mlp[0]
    expected = _ffe_by_hand(
        grid[0].numpy(), lin.weight.detach().numpy(), lin.bias.detach().numpy(), 3
    )
    got = ffe(grid)
    assert got.shape == grid.shape
    np.testing.assert_allclose(got[0].detach().numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("stat", ["signed", "abs", "power"])
def test_lfs_equals_the_window_dct_statistic_conv_and_gelu_by_hand(stat):
    torch.manual_seed(1)
    lfs = LFS(dim=2, q=3, stat=stat).double()
    grid = _grid(4, 4, 2, seed=1)
    conv = lfs.conv
    expected = _lfs_by_hand(
        grid[0].numpy(), conv.weight.detach().numpy(), conv.bias.detach().numpy(), 3, stat
    )
    got = lfs(grid)
    assert got.shape == grid.shape
    np.testing.assert_allclose(got[0].detach().numpy(), expected, atol=1e-12)


def test_signed_lfs_statistic_of_one_window_by_explicit_cosines():
    # mean_kl F_kl = (1/Q²) Σ_kl Σ_ij a_k a_l cos(π(i+½)k/Q) cos(π(j+½)l/Q) f_ij, written out
    f = np.arange(9.0).reshape(3, 3) ** 2
    a = [np.sqrt(1 / 3), np.sqrt(2 / 3), np.sqrt(2 / 3)]

    def basis(k, i):
        return a[k] * np.cos(np.pi * (i + 0.5) * k / 3)

    total = sum(
        basis(k, i) * basis(m, j) * f[i, j]
        for k in range(3) for m in range(3) for i in range(3) for j in range(3)
    )  # fmt: skip
    grid = torch.from_numpy(np.pad(f, 1, mode="edge")[None, :, :, None])  # centre token at (2, 2)
    coeff = window_dct(grid, 3)[0, 0, :, :, 2, 2]
    assert coeff.mean().item() == pytest.approx(total / 9, abs=1e-12)


def test_adapter_fuses_lambda_ffe_plus_lfs_with_the_frozen_tokens_by_hand():
    torch.manual_seed(2)
    adapter = FrequencyAdapter(2, 3, 3, "signed", 0.1).double()
    grid = _grid(4, 5, 2, seed=2)
    f = grid[0].numpy()
    lin, conv = adapter.ffe.mlp[0], adapter.lfs.conv
    ffe = _ffe_by_hand(f, lin.weight.detach().numpy(), lin.bias.detach().numpy(), 3)
    lfs = _lfs_by_hand(f, conv.weight.detach().numpy(), conv.bias.detach().numpy(), 3, "signed")
    expected = 0.1 * (ffe + lfs) + 0.9 * f
    np.testing.assert_allclose(adapter(grid)[0].detach().numpy(), expected, atol=1e-12)


def tiny():
    return load_clip("clip_tiny", "random", seed=0)


def fe_clip(**cfg):
    return FeClip({"kind": "fe_clip", "taps": [1, 3], "seed": 0, **cfg}, device="cpu")


def test_lambda_zero_reproduces_the_frozen_encoders_tokens():
    encoder = tiny()
    head = fe_clip(lam=0.0).build(encoder)
    images = torch.randn(2, 3, 64, 64)
    x, grids = head.adapted(head.frozen(images))
    frozen = encoder.encode_image(images, [1, 3], "raw")
    for grid, ref in zip(grids, frozen.patches):
        assert torch.equal(grid, ref)
    v = encoder.visual
    assert torch.equal((v.ln_post(x[:, 0]) @ v.proj), frozen.cls)


def batch(n=4):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, 32, 32, generator=g)
    masks = torch.zeros(n, 32, 32)
    masks[::2, 8:20, 10:24] = 1.0
    return images, masks, torch.zeros(n, dtype=torch.long)


def protos(encoder):
    return torch.nn.functional.normalize(torch.randn(1, 2, encoder.visual.proj.shape[1]), dim=-1)


@pytest.mark.parametrize("method", [fe_clip(lam=0.5), AprilGan({"kind": "april_gan"}, "cpu")])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(method):
    encoder = tiny()
    head = method.build(encoder)
    t = protos(encoder)
    opt = build_optimizer(head, TrainConfig(lr=1e-3))
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = method._loss(head, t, batch())["loss"]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_fc_lr_mult_zero_leaves_fc_patch_at_clips_projection():
    encoder = tiny()
    method = fe_clip(fc_lr_mult=0.0, lam=0.5)
    head = method.build(encoder)
    before = head.fc_patch.weight.detach().clone()
    assert torch.equal(before, encoder.visual.proj.detach().T)
    opt = build_optimizer(head, TrainConfig(lr=1e-2))
    for _ in range(3):
        opt.zero_grad()
        method._loss(head, protos(encoder), batch())["loss"].backward()
        opt.step()
    assert torch.equal(head.fc_patch.weight, before)
    assert any(not torch.equal(a, b) for a, b in zip(head.adapters.parameters(),
               fe_clip(fc_lr_mult=0.0, lam=0.5).build(tiny()).adapters.parameters()))  # fmt: skip


class FixedHead(torch.nn.Module):
    """A head whose one tap gives fixed (1, 2, 2, 2) logits and fixed image logits."""

    align_corners, tap_reduce = False, "mean"

    def __init__(self, anomaly_prob: torch.Tensor, image_logits: list[float]) -> None:
        super().__init__()
        logit = torch.log(anomaly_prob / (1 - anomaly_prob))  # softmax([0, logit])[1] = p
        self.tap = torch.stack([torch.zeros_like(logit), logit])[None]
        self.image = torch.nn.Parameter(torch.tensor([image_logits]))

    def forward(self, inputs, protos):
        return self.image, [self.tap]


def test_the_loss_is_focal_plus_dice_plus_cls_by_hand_on_a_2x2_map():
    prob = torch.tensor([[0.9, 0.2], [0.6, 0.1]], dtype=torch.float64)
    mask = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    head = FixedHead(prob, [0.0, 1.0])
    batch_ = (torch.zeros(1, 3, 2, 2), mask, torch.zeros(1, dtype=torch.long))
    parts = fe_clip()._loss(head, torch.zeros(1, 2, 4, dtype=torch.float64), batch_)
    # Focal (gamma 2, alpha 1): p of the true class is 0.9, 0.8, 0.6, 0.9;
    # mean of -(1 - p)^2 log p = (0.0010536 + 0.0089257 + 0.0817321 + 0.0010536) / 4.
    assert float(parts["focal"].detach()) == pytest.approx(0.0231912630, rel=1e-6)
    # Dice (smooth 1): 1 - (2 * (0.9 + 0.6) + 1) / ((0.9 + 0.2 + 0.6 + 0.1) + 2 + 1) = 1 - 4 / 4.8.
    assert float(parts["dice"].detach()) == pytest.approx(1 / 6, rel=1e-6)
    # Image CE, label anomalous (the mask has defect pixels): log(1 + e^-1).
    assert float(parts["cls"].detach()) == pytest.approx(0.3132616875, rel=1e-6)
    assert float(parts["loss"].detach()) == pytest.approx(
        0.0231912630 + 1 / 6 + 0.3132616875, rel=1e-6
    )


def test_april_gans_map_sums_the_taps_softmax_after_align_corners_upsampling():
    method = AprilGan({"kind": "april_gan"}, "cpu")
    head = method.build(tiny())
    g = torch.Generator().manual_seed(0)
    taps = [torch.randn(1, 2, 2, 2, generator=g) for _ in range(2)]
    # 2 -> 3 px with align_corners=True: rows/columns at source positions 0, 0.5, 1.
    weights = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    expected = torch.zeros(3, 3)
    for logits in taps:
        up = weights @ logits[0] @ weights.T  # (2, 3, 3): each class channel upsampled
        expected += torch.exp(up[1]) / (torch.exp(up[0]) + torch.exp(up[1]))  # then softmax
    got = method._map(head, taps, (3, 3))
    assert got.shape == (1, 3, 3)
    assert torch.allclose(torch.from_numpy(got[0]), expected, atol=1e-6)
    # A softmax before upsampling, align_corners=False or a mean over taps would all differ.
    assert not torch.allclose(torch.from_numpy(got[0]), expected / 2, atol=1e-3)
