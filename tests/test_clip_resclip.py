"""ResCLIP's RCS (METHODS §4.3, §12.3a): the formula on hand-made weights, and as the final
refined block of the Crane path on the tiny random CLIP.
"""

import pytest
import torch

from iadbench.errors import ConfigError
from iadbench.methods.crane import refined as crane
from iadbench.methods.crane.params import rcs_layers
from iadbench.methods.crane.rcs import Rcs, mean_attention, rcs_attention


def test_rcs_is_tau_times_the_lambda_mix_of_self_and_cross_attention():
    a_s = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    a_c = torch.eye(2)
    got = rcs_attention(a_s, a_c, lam=0.25, tau=2.0)
    # 2 * (0.75 * a_s + 0.25 * I)
    assert torch.allclose(got, torch.tensor([[0.8, 1.2], [0.9, 1.1]]))
    assert torch.equal(rcs_attention(a_s, a_c, lam=0.0, tau=1.0), a_s)
    assert torch.equal(rcs_attention(a_s, a_c, lam=1.0, tau=1.0), a_c)


def test_rcs_gives_a_c_a_share_lam_of_each_row_of_the_eattn_sum():
    # A_s: the E-Attn sum of n = 3 row-stochastic softmaxes (rows sum to 3); A_c row-stochastic.
    a_s = torch.tensor([[1.0, 2.0], [0.5, 2.5]])
    a_c = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    got = rcs_attention(a_s, a_c, lam=0.3, tau=2.0, terms=3)
    # By hand: 2 * (0.7 * a_s + 0.3 * 3 * a_c) = 2 * (0.7 a_s + 0.9 a_c)
    # row 0: 2 * (0.7 + 0.225, 1.4 + 0.675) = (1.85, 4.15); row 1: 2 * (0.35 + 0.9, 1.75) =
    # (2.5, 3.5)
    assert torch.allclose(got, torch.tensor([[1.85, 4.15], [2.5, 3.5]]))
    # A_c's part of each row: 2 * 0.9 * 1 = 1.8 of a row sum 2 * (0.7 * 3 + 0.9) = 6: 0.3 = lam,
    # ResCLIP's share, and the rows keep the E-Attn scale tau * n.
    assert torch.allclose(got.sum(-1), torch.tensor([6.0, 6.0]))
    assert torch.allclose((2.0 * 0.9 * a_c).sum(-1) / got.sum(-1), torch.tensor([0.3, 0.3]))


def test_cross_attention_is_the_mean_of_the_maps():
    maps = [torch.full((1, 1, 2, 2), v) for v in (0.1, 0.3, 0.8)]
    assert torch.allclose(mean_attention(maps), torch.full((1, 1, 2, 2), 0.4))
    with pytest.raises(ValueError, match="no attention maps"):
        mean_attention([])


def test_rcs_options_are_checked():
    assert Rcs() == Rcs(lam=0.3, tau=2.0, layers=None)
    with pytest.raises(ConfigError, match="lambda"):
        Rcs(lam=1.5)
    with pytest.raises(ConfigError, match="tau"):
        Rcs(tau=0.0)
    with pytest.raises(ConfigError, match="at least one"):
        Rcs(layers=())


def test_rcs_switched_off_is_the_eattn_path_and_on_changes_only_the_final_block(tiny, images):
    plain = crane.crane_tokens(tiny, images, taps=[2, 3], eattn_from=1)
    off = crane.crane_tokens(tiny, images, taps=[2, 3], eattn_from=1, rcs=Rcs(0.0, 1.0, (1, 2)))
    for a, b in zip(plain.patches, off.patches, strict=True):
        assert torch.equal(a, b)
    on = crane.crane_tokens(tiny, images, taps=[2, 3], eattn_from=1, rcs=Rcs(layers=(1, -3)))
    assert torch.equal(on.patches[0], plain.patches[0])
    assert not torch.allclose(on.patches[1], plain.patches[1], atol=1e-3)
    assert torch.equal(on.cls, plain.cls)


@pytest.mark.parametrize("attn_type", ["vv", "kk+vv"])
def test_rcs_final_block_by_hand(tiny, images, attn_type):
    """eattn_from = last block, A_c from the model's own attention weights of blocks 1, 2; with
    two E-Attn terms (rows of A_s sum to 2) A_c is weighted 2 lam."""
    v = tiny.visual
    blocks = v.transformer.resblocks
    lam, tau = 0.3, 2.0
    with torch.no_grad():
        x = v.ln_pre(tiny._embedded(images))
        cross = []
        for block in blocks[:3]:
            normed = block.ln_1(x)
            _, weights = block.attn(
                normed, normed, normed, need_weights=True, average_attn_weights=False
            )
            cross.append(weights)
            x = block(x)
        a_c = (cross[1] + cross[2]) / 2
        last = blocks[3]
        width = x.shape[-1]
        normed = last.ln_1(x)
        heads = last.attn.num_heads

        def proj(j):
            w = last.attn.in_proj_weight[j * width : (j + 1) * width]
            y = normed @ w.T + last.attn.in_proj_bias[j * width : (j + 1) * width]
            return y.reshape(2, -1, heads, width // heads).transpose(1, 2)

        key, val = proj(1), proj(2)
        a_s = torch.softmax(val @ val.transpose(-2, -1) / val.shape[-1] ** 0.5, dim=-1)
        n = 1
        if attn_type == "kk+vv":
            a_s = a_s + torch.softmax(key @ key.transpose(-2, -1) / key.shape[-1] ** 0.5, dim=-1)
            n = 2
        mixed = tau * ((1 - lam) * a_s + lam * n * a_c)
        out = last.attn.out_proj((mixed @ val).transpose(1, 2).reshape(x.shape))
        refined = x + out
        h, w = tiny.grid
        expected = (v.ln_post(refined[:, 1:]) @ v.proj).reshape(2, h, w, -1)
    got = crane.crane_tokens(
        tiny, images, taps=[3], eattn_from=3, attn_type=attn_type, rcs=Rcs(lam, tau, (1, 2))
    )
    assert torch.allclose(got.patches[0], expected, atol=1e-5)


def test_rcs_needs_a_refined_final_block_and_existing_layers(tiny, images):
    with pytest.raises(ConfigError, match="eattn_from starts none"):
        crane.crane_tokens(tiny, images, eattn_from=4, rcs=Rcs(layers=(1,)))
    with pytest.raises(ConfigError, match="RCS layer 5 outside"):
        crane.crane_tokens(tiny, images, rcs=Rcs(layers=(5, 6, 7, 8)))  # 12-block layers, 4 blocks


def test_default_rcs_layers_scale_resclips_to_the_depth(tiny, images):
    # ResCLIP: attn_map[i] for i in range(5, 9) of ViT-B/16's 12 blocks, i.e. 5/12 to 9/12.
    assert rcs_layers(12) == list(range(5, 9)) == [5, 6, 7, 8]
    assert rcs_layers(24) == list(range(10, 18))
    assert rcs_layers(4) == [1, 2]  # the tiny CLIP's 4 blocks: range(20 // 12, 36 // 12)
    default = crane.crane_tokens(tiny, images, taps=[3], eattn_from=1, rcs=Rcs())
    given = crane.crane_tokens(tiny, images, taps=[3], eattn_from=1, rcs=Rcs(layers=(1, 2)))
    assert torch.equal(default.patches[0], given.patches[0])
