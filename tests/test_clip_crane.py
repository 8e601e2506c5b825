"""Crane's training-free path (METHODS §4.1, §12.1) on hand-made tensors and the tiny random CLIP:
E-Attn against hand computations, the dual path's wiring, D-Attn, maps and image scores.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iadbench.errors import ConfigError
from iadbench.methods.crane import refined as crane

TAU = 0.07


def hand_softmax(row):
    exps = [math.exp(v - max(row)) for v in row]
    return [e / sum(exps) for e in exps]


def hand_self_attention(vectors, scale):
    """Rows of softmax(x xᵀ · scale) for a list of plain vectors."""
    return [
        hand_softmax([scale * sum(a * b for a, b in zip(u, w)) for w in vectors]) for u in vectors
    ]


def one_head(wq, wk, wv):
    """A 1-head, width-2 attention with the given q/k/v matrices, no biases, identity out_proj."""
    attn = torch.nn.MultiheadAttention(2, 1, batch_first=True)
    with torch.no_grad():
        attn.in_proj_weight.copy_(torch.cat([wq, wk, wv]))
        attn.in_proj_bias.zero_()
        attn.out_proj.weight.copy_(torch.eye(2))
        attn.out_proj.bias.zero_()
    return attn


def blocks_input(encoder, images, upto):
    """The original stream entering block ``upto`` (CLS first), run block by block by hand."""
    v = encoder.visual
    with torch.no_grad():
        x = v.ln_pre(encoder._embedded(images))
        for block in v.transformer.resblocks[:upto]:
            x = block(x)
    return x


def projected_patches(encoder, tokens):
    v = encoder.visual
    h, w = encoder.grid
    return (v.ln_post(tokens[:, 1:]) @ v.proj).reshape(tokens.shape[0], h, w, -1)


# --- E-Attn --------------------------------------------------------------------------------------


def test_eattn_vv_on_a_one_head_attention_equals_the_hand_computation():
    x = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    attn = one_head(torch.eye(2), torch.eye(2), 2 * torch.eye(2))
    q, k, v = crane.project_qkv(attn, torch.tensor([x]))
    out = crane.attend(attn, crane.eattn_weights(q, k, v, ("vv",)), v)[0]
    values = [[2 * a for a in row] for row in x]  # v = x W_vᵀ with W_v = 2I
    weights = hand_self_attention(values, scale=2**-0.5)  # d_h = 2
    expected = [
        [sum(w * val[c] for w, val in zip(row, values)) for c in range(2)] for row in weights
    ]
    assert torch.allclose(out, torch.tensor(expected), atol=1e-6)


def test_eattn_sums_its_terms_each_with_its_own_projection():
    x = [[1.0, 0.0], [0.0, 1.0], [1.0, -1.0], [0.5, 2.0]]
    wq, wk, wv = torch.eye(2), 3 * torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    attn = one_head(wq, wk, wv)
    q, k, v = crane.project_qkv(attn, torch.tensor([x]))
    got = crane.eattn_weights(q, k, v, crane.attn_terms("vv+qq+kk"))[0, 0]
    xq = x
    xk = [[3 * a for a in row] for row in x]
    xv = [[row[1], row[0]] for row in x]
    parts = [hand_self_attention(m, 2**-0.5) for m in (xq, xk, xv)]
    expected = [[sum(p[i][j] for p in parts) for j in range(4)] for i in range(4)]
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.full((4,), 3.0))  # a sum of three softmaxes


def test_attn_type_parsing():
    assert crane.attn_terms("qq+kk+vv") == ("qq", "kk", "vv")
    assert crane.attn_terms("vv+qq") == ("qq", "vv")
    assert crane.attn_terms("kk") == ("kk",)
    for bad in ("", "qk", "qq+qq", "qq+", "QQ"):
        with pytest.raises(ConfigError, match="attn_type"):
            crane.attn_terms(bad)


# --- the dual path -------------------------------------------------------------------------------


def test_refined_path_beyond_depth_is_the_plain_encoder(tiny, images):
    out = crane.crane_tokens(tiny, images, taps=[0, 1, 2, 3], eattn_from=4)
    plain = tiny.encode_image(images, blocks=[0, 1, 2, 3])
    assert out.sources == ((0, "eattn"), (1, "eattn"), (2, "eattn"), (3, "eattn"))
    for got, want in zip(out.patches, plain.patches, strict=True):
        assert torch.equal(got, want)
    assert torch.equal(out.cls, plain.cls)


def test_cls_comes_from_the_original_path(tiny, images):
    out = crane.crane_tokens(tiny, images, taps=[-1], eattn_from=0)
    plain = tiny.encode_image(images, blocks=[-1])
    assert torch.allclose(out.cls, plain.cls, atol=1e-6)
    assert not torch.allclose(out.patches[0], plain.patches[0], atol=1e-3)  # refined tokens


def test_refined_stream_adds_eattn_of_the_original_stream_and_skips_the_ffn(tiny, images):
    """eattn_from=2, 'vv', tap 3: refined = x2 + A2(ln_1 x2) + A3(ln_1 x3), x3 = block2(x2)."""
    blocks = tiny.visual.transformer.resblocks

    def vv_attention(block, x):
        width = x.shape[-1]
        normed = block.ln_1(x)
        v = F.linear(
            normed, block.attn.in_proj_weight[2 * width :], block.attn.in_proj_bias[2 * width :]
        )
        heads = block.attn.num_heads
        v = v.reshape(*x.shape[:2], heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(v, v, v)  # softmax(v vᵀ / sqrt(d_h)) v
        return block.attn.out_proj(out.transpose(1, 2).reshape(x.shape))

    with torch.no_grad():
        x2 = blocks_input(tiny, images, 2)
        x3 = blocks[2](x2)
        refined = x2 + vv_attention(blocks[2], x2) + vv_attention(blocks[3], x3)
        expected = projected_patches(tiny, refined)
    out = crane.crane_tokens(tiny, images, taps=[3], eattn_from=2, attn_type="vv")
    assert torch.allclose(out.patches[0], expected, atol=1e-5)


def test_negative_indices_resolve_against_the_depth(tiny, images):
    a = crane.crane_tokens(tiny, images, taps=[-1, -3], eattn_from=-3)
    b = crane.crane_tokens(tiny, images, taps=[3, 1], eattn_from=1)
    assert a.sources == b.sources == ((1, "eattn"), (3, "eattn"))
    for x, y in zip(a.patches, b.patches, strict=True):
        assert torch.equal(x, y)
    # Crane's code: replace_with_EAttn(to_layer=20) sets resblocks[-i] for i in range(1, 20),
    # the last 19 of ViT-L/14's 24 blocks, so the first refined block is 24 - 19 = 5; ViT-B's
    # 12 blocks keep the fraction: 12 * 5 / 24 = 2.5, floored to 2.
    assert crane.default_eattn_from(24) == 24 - len(range(1, 20)) == 5
    assert crane.default_eattn_from(12) == 2 and crane.default_eattn_from(4) == 0
    assert crane.resolve_block(-18, 24, "eattn_from") == 6
    assert crane.resolve_block(30, 24, "eattn_from", beyond=True) == 30


def test_a_tap_before_the_refined_path_reads_the_original_path(tiny, images):
    out = crane.crane_tokens(tiny, images, taps=[1, 3], eattn_from=2)
    plain = tiny.encode_image(images, blocks=[1, 3])
    assert torch.equal(out.patches[0], plain.patches[0])
    assert not torch.allclose(out.patches[1], plain.patches[1], atol=1e-3)


def test_bad_indices_are_refused(tiny, images):
    with pytest.raises(ConfigError, match=r"eattn_from -5 outside -4\.\.3"):
        crane.crane_tokens(tiny, images, eattn_from=-5)
    with pytest.raises(ConfigError, match="layer 4 outside"):
        crane.crane_tokens(tiny, images, taps=[4])
    with pytest.raises(ConfigError, match="not an integer"):
        crane.resolve_block(1.5, 4, "eattn_from")


# --- D-Attn --------------------------------------------------------------------------------------


def test_dattn_weights_hand_case():
    # Patches e1, e1, e2 (scaled: only directions count): S = [[1,1,0],[1,1,0],[0,0,1]],
    # mean 5/9, S' = 3 (S - 1.2 * 5/9) = 3 (S - 2/3): 1 where S = 1, -2 (masked) where S = 0.
    dino = torch.tensor([[[[5.0, 0.0], [0.5, 0.0], [0.0, 2.0]]]])  # (1, 1, 3, 2)
    got = crane.dattn_weights(dino, beta=1.2, gamma=3.0)[0]
    expected = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(got, expected, atol=1e-6)
    # beta = 0: S' = 3 S >= 0 everywhere, nothing masked, a plain row softmax of 3 S.
    got = crane.dattn_weights(dino, beta=0.0, gamma=3.0)[0]
    rows = [hand_softmax([3.0, 3.0, 0.0]), hand_softmax([3.0, 3.0, 0.0]), hand_softmax([0, 0, 3.0])]
    assert torch.allclose(got, torch.tensor(rows), atol=1e-6)


def test_dattn_rows_with_nothing_left_attend_to_themselves_and_images_stay_apart():
    same = torch.ones(1, 2, 2, 3)  # S = 1 everywhere, S' = 3 (1 - 1.2) < 0: every entry masked
    assert torch.equal(crane.dattn_weights(same)[0], torch.eye(4))
    other = torch.randn(1, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    both = crane.dattn_weights(torch.cat([same, other]))
    assert torch.equal(both[0], torch.eye(4))
    assert torch.allclose(both[1], crane.dattn_weights(other)[0])  # mean(S) per image


def test_dattn_with_orthogonal_features_gives_each_patch_its_own_value(tiny, images):
    # One-hot DINO features: S = I, so S' masks every off-diagonal entry and D-Attn = out_proj(V).
    dino = torch.eye(64).reshape(1, 8, 8, 64).expand(2, -1, -1, -1)
    out = crane.crane_tokens(tiny, images, taps=[2], dino=dino, dattn_with_eattn=False)
    assert out.sources == ((2, "dattn"),)
    block = tiny.visual.transformer.resblocks[2]
    with torch.no_grad():
        x = block.ln_1(blocks_input(tiny, images, 2))
        width = x.shape[-1]
        v = F.linear(
            x, block.attn.in_proj_weight[2 * width :], block.attn.in_proj_bias[2 * width :]
        )
        expected = projected_patches(tiny, block.attn.out_proj(v))
    assert torch.allclose(out.patches[0], expected, atol=1e-5)


def test_dattn_input_attention_reads_the_stream_after_the_attention_residual(tiny, images):
    # One-hot DINO features again (D-Attn = out_proj(V)); V now comes from ln_1 of the block input
    # plus the block's own attention (torch's MultiheadAttention forward, not our pieces).
    dino = torch.eye(64).reshape(1, 8, 8, 64).expand(2, -1, -1, -1)
    out = crane.crane_tokens(
        tiny, images, taps=[2], dino=dino, dattn_with_eattn=False, dattn_input="attention"
    )
    block = tiny.visual.transformer.resblocks[2]
    with torch.no_grad():
        x = blocks_input(tiny, images, 2)
        normed = block.ln_1(x)
        mid = x + block.ls_1(block.attn(normed, normed, normed, need_weights=False)[0])
        width = x.shape[-1]
        v = F.linear(
            block.ln_1(mid),
            block.attn.in_proj_weight[2 * width :],
            block.attn.in_proj_bias[2 * width :],
        )
        expected = projected_patches(tiny, block.attn.out_proj(v))
    assert torch.allclose(out.patches[0], expected, atol=1e-5)
    block_input = crane.crane_tokens(tiny, images, taps=[2], dino=dino, dattn_with_eattn=False)
    assert not torch.allclose(block_input.patches[0], expected, atol=1e-3)
    with pytest.raises(ConfigError, match="dattn_input"):
        crane.crane_tokens(tiny, images, dino=dino, dattn_input="ffn")


def test_no_dino_means_no_guidance_and_guidance_adds_its_own_tokens(tiny, images):
    plain = crane.crane_tokens(tiny, images, taps=[1, 3])
    dino = torch.randn(2, 8, 8, 16, generator=torch.Generator().manual_seed(1))
    guided = crane.crane_tokens(tiny, images, taps=[1, 3], dino=dino)
    assert guided.sources == ((1, "dattn"), (1, "eattn"), (3, "dattn"), (3, "eattn"))
    assert torch.equal(guided.patches[1], plain.patches[0])
    assert torch.equal(guided.patches[3], plain.patches[1])
    assert torch.equal(guided.cls, plain.cls)
    assert not torch.allclose(guided.patches[0], plain.patches[0], atol=1e-3)


def test_dattn_grid_follows_dino_by_default_or_the_clip_grid(tiny, images):
    dino = torch.randn(2, 4, 4, 16, generator=torch.Generator().manual_seed(2))
    on_dino = crane.crane_tokens(tiny, images, taps=[3], dino=dino)
    assert all(p.shape == (2, 4, 4, 32) for p in on_dino.patches)
    on_clip = crane.crane_tokens(tiny, images, taps=[3], dino=dino, dattn_grid="clip")
    assert all(p.shape == (2, 8, 8, 32) for p in on_clip.patches)
    assert torch.equal(on_clip.patches[1], crane.crane_tokens(tiny, images, taps=[3]).patches[0])
    with pytest.raises(ConfigError, match="dattn_grid"):
        crane.crane_tokens(tiny, images, dino=dino, dattn_grid="both")


def test_dino_tokens_from_a_tiny_timm_vit_with_registers():
    from timm.models.vision_transformer import VisionTransformer

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = VisionTransformer(
            img_size=28,
            patch_size=14,
            embed_dim=32,
            depth=2,
            num_heads=2,
            reg_tokens=4,
            no_embed_class=True,
            num_classes=0,
        ).eval()
    batch = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    tokens = crane.dino_patch_tokens(model, batch)
    with torch.no_grad():
        expected = model.forward_features(batch)[:, model.num_prefix_tokens :]
    assert tokens.shape == (2, 2, 2, 32)
    assert torch.allclose(tokens, expected.reshape(2, 2, 2, 32), atol=1e-6)
    bigger = F.interpolate(batch, size=(56, 56), mode="bilinear", align_corners=False)
    resized = F.interpolate(bigger, size=(28, 28), mode="bilinear", antialias=True)
    assert torch.allclose(
        crane.dino_patch_tokens(model, bigger), crane.dino_patch_tokens(model, resized)
    )


def test_renormalize_swaps_one_normalisation_for_another():
    raw = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    clip_mean, clip_std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    net_mean, net_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    clip = (raw - torch.tensor(clip_mean)[:, None, None]) / torch.tensor(clip_std)[:, None, None]
    got = crane.renormalize(clip, clip_mean, clip_std, net_mean, net_std)
    want = (raw - torch.tensor(net_mean)[:, None, None]) / torch.tensor(net_std)[:, None, None]
    assert torch.allclose(got, want, atol=1e-5)


# --- maps and scores -----------------------------------------------------------------------------


def unit(*v):
    return torch.tensor(v) / torch.tensor(v).norm()


def test_per_tap_softmax_mean_and_the_logit_mean_alternative():
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    taps = [unit(0.0, 1.0).reshape(1, 1, 1, 2), unit(1.0, 1.0).reshape(1, 1, 1, 2)]
    c = 2**-0.5
    soft = crane.patch_map(taps, protos, TAU)
    assert soft.item() == pytest.approx((hand_softmax([0, 1 / TAU])[1] + 0.5) / 2, abs=1e-6)
    hard = crane.patch_map(taps, protos, TAU, soft_mean=False)
    assert hard.item() == pytest.approx(hand_softmax([c / 2 / TAU, (1 + c) / 2 / TAU])[1], abs=1e-6)


def test_upsample_logits_interpolates_logits_before_the_softmax():
    """A 1x2 grid (a normal token, an anomalous one) upsampled to 1x4 (bilinear,
    align_corners false: source x = -0.25, 0.25, 0.75, 1.25, clamped at the edges). Crane's order
    (``upsample_logits``) interpolates the logits, so the second pixel's are 0.75·[1/τ, 0] +
    0.25·[0, 1/τ]; the default interpolates the two probabilities instead."""
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tokens = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # (B, h, w, D) = (1, 1, 2, 2)
    outputs = crane.CraneTokens(torch.zeros(1, 2), (tokens,), ((0, "eattn"),))
    p_normal, p_anomalous = hand_softmax([1 / TAU, 0])[1], hand_softmax([0, 1 / TAU])[1]
    _, maps = crane.crane_scores(
        outputs, protos, (1, 4), "map_max", TAU, 0.0, soft_mean=False, upsample_logits=True
    )
    expected = [
        p_normal,
        hand_softmax([0.75 / TAU, 0.25 / TAU])[1],
        hand_softmax([0.25 / TAU, 0.75 / TAU])[1],
        p_anomalous,
    ]
    assert maps[0, 0].tolist() == pytest.approx(expected, abs=1e-6)
    _, plain = crane.crane_scores(outputs, protos, (1, 4), "map_max", TAU, 0.0, soft_mean=False)
    mixed = [p_normal, 0.75 * p_normal + 0.25 * p_anomalous]
    assert plain[0, 0, :2].tolist() == pytest.approx(mixed, abs=1e-6)
    # with soft_mean the flag changes nothing (one tap: the same softmax, upsampled)
    _, soft = crane.crane_scores(
        outputs, protos, (1, 4), "map_max", TAU, 0.0, soft_mean=True, upsample_logits=True
    )
    assert torch.equal(soft, plain)


def test_pooled_embedding_hand_case():
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    patches = [torch.tensor([[[[3.0, 0.0], [0.0, 0.5]]]])]  # one tap, a 1x2 grid: e1, e2
    cls = torch.tensor([[2.0, 0.0]])
    p_normal, p_anomalous = hand_softmax([1 / TAU, 0])[1], hand_softmax([0, 1 / TAU])[1]
    local = np.array([p_normal, p_anomalous]) / math.hypot(p_normal, p_anomalous)
    g = 0.5 * local + 0.5 * np.array([1.0, 0.0])
    g /= np.linalg.norm(g)
    got = crane.pooled_embedding(cls, patches, protos, TAU)
    assert torch.allclose(got[0], torch.tensor(g, dtype=torch.float32), atol=1e-6)
    outputs = crane.CraneTokens(cls, tuple(patches), ((0, "eattn"),))
    score = crane.image_scores("pooled", outputs, protos, torch.zeros(1, 2, 2), TAU)
    assert score.item() == pytest.approx(hand_softmax([g[0] / TAU, g[1] / TAU])[1], abs=1e-5)


def test_smoothing_is_a_sigma_4_gaussian_on_the_upsampled_map():
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = crane.smooth_maps(maps, (64, 64), sigma=0)
    assert torch.equal(plain, F.interpolate(maps[:, None], size=(64, 64), mode="bilinear")[:, 0])
    impulse = torch.zeros(1, 65, 65)
    impulse[0, 32, 32] = 1.0
    blurred = crane.smooth_maps(impulse, (65, 65))[0].double()
    offsets = torch.arange(65, dtype=torch.float64) - 32
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert (blurred.sum(1) * offsets**2).sum().item() == pytest.approx(16.0, rel=1e-3)
    flat = crane.smooth_maps(torch.full((1, 8, 8), 0.3), (32, 32))
    assert torch.allclose(flat, torch.full_like(flat, 0.3))


@pytest.mark.parametrize("mode", crane.IMAGE_SCORE_MODES)
def test_maps_and_scores_are_probabilities_of_the_right_shape(tiny, images, mode):
    protos = F.normalize(torch.randn(2, 32, generator=torch.Generator().manual_seed(4)), dim=-1)
    dino = torch.randn(2, 8, 8, 16, generator=torch.Generator().manual_seed(5))
    outputs = crane.crane_tokens(tiny, images, dino=dino)
    scores, maps = crane.crane_scores(outputs, protos, (64, 48), image_score_mode=mode)
    assert scores.shape == (2,) and maps.shape == (2, 64, 48)
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0
    if mode == "map_max":
        assert torch.equal(scores, maps.amax(dim=(1, 2)))
    if mode == "cls":
        cls = F.normalize(tiny.encode_image(images).cls, dim=-1)
        logits = cls @ protos.T / TAU
        assert torch.allclose(scores, logits.softmax(-1)[:, 1], atol=1e-5)


def test_unknown_score_mode_is_refused(tiny, images):
    outputs = crane.crane_tokens(tiny, images, taps=[-1])
    with pytest.raises(ConfigError, match="image_score_mode 'mean'"):
        crane.crane_scores(outputs, torch.eye(2, 32), (64, 64), image_score_mode="mean")
