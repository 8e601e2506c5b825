"""ResCLIP's RCS (METHODS §4.3, §12.3a): the formula on hand-made weights, and as the final
refined block of the Crane path on the tiny random CLIP.
"""

import pytest
import torch

from iadbench.clip import crane
from iadbench.clip.resclip import Rcs, mean_attention, rcs_attention
from iadbench.errors import ConfigError


def test_rcs_is_tau_times_the_lambda_mix_of_self_and_cross_attention():
    a_s = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    a_c = torch.eye(2)
    got = rcs_attention(a_s, a_c, lam=0.25, tau=2.0)
    # 2 * (0.75 * a_s + 0.25 * I)
    assert torch.allclose(got, torch.tensor([[0.8, 1.2], [0.9, 1.1]]))
    assert torch.equal(rcs_attention(a_s, a_c, lam=0.0, tau=1.0), a_s)
    assert torch.equal(rcs_attention(a_s, a_c, lam=1.0, tau=1.0), a_c)


def test_cross_attention_is_the_mean_of_the_maps():
    maps = [torch.full((1, 1, 2, 2), v) for v in (0.1, 0.3, 0.8)]
    assert torch.allclose(mean_attention(maps), torch.full((1, 1, 2, 2), 0.4))
    with pytest.raises(ValueError, match="no attention maps"):
        mean_attention([])


def test_rcs_options_are_checked():
    assert Rcs() == Rcs(lam=0.3, tau=2.0, layers=(5, 6, 7, 8))
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


def test_rcs_final_block_by_hand(tiny, images):
    """eattn_from = last block, 'vv', A_c from the model's own attention weights of blocks 1, 2."""
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
        val = normed @ last.attn.in_proj_weight[2 * width :].T + last.attn.in_proj_bias[2 * width :]
        val = val.reshape(2, -1, last.attn.num_heads, width // last.attn.num_heads).transpose(1, 2)
        a_s = torch.softmax(val @ val.transpose(-2, -1) / val.shape[-1] ** 0.5, dim=-1)
        mixed = tau * ((1 - lam) * a_s + lam * a_c)
        out = last.attn.out_proj((mixed @ val).transpose(1, 2).reshape(x.shape))
        refined = x + out
        h, w = tiny.grid
        expected = (v.ln_post(refined[:, 1:]) @ v.proj).reshape(2, h, w, -1)
    got = crane.crane_tokens(
        tiny, images, taps=[3], eattn_from=3, attn_type="vv", rcs=Rcs(lam, tau, (1, 2))
    )
    assert torch.allclose(got.patches[0], expected, atol=1e-5)


def test_rcs_needs_a_refined_final_block_and_existing_layers(tiny, images):
    with pytest.raises(ConfigError, match="eattn_from starts none"):
        crane.crane_tokens(tiny, images, eattn_from=4, rcs=Rcs(layers=(1,)))
    with pytest.raises(ConfigError, match="RCS layer 5 outside"):
        crane.crane_tokens(tiny, images, rcs=Rcs())  # ResCLIP's 12-block layers on 4 blocks
