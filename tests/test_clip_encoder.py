"""CLIP encoders on the tiny registered architecture with random weights: visual outputs, the
window pass, position interpolation, weights (state dict, TorchScript archive, missing), text.

One tiny model is built per module; every check feeds it a few 64 px images.
"""

import pytest
import torch
import torch.nn.functional as F

from iadbench.backbones.loader import load_backbone
from iadbench.backbones.registry import REGISTRY, spec_for
from iadbench.clip.encoder import (
    bundled_tokenizer,
    interpolate_positional_embedding,
    load_clip,
    text_prototypes,
)
from iadbench.errors import ConfigError, WeightsError
from iadbench.methods.winclip.windows import window_indices


@pytest.fixture
def offline_caches(tmp_path, monkeypatch):
    """Every weights cache (Hugging Face, torch hub, ~/.cache/clip) in empty tmp dirs."""
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


# --- registry ------------------------------------------------------------------------------


def test_clip_registry_entries_match_open_clip_configs_and_tags():
    import open_clip

    from iadbench.backbones.loader import register_open_clip_configs

    register_open_clip_configs()
    for name, spec in REGISTRY.items():
        if spec.family != "clip":
            continue
        cfg = open_clip.get_model_config(spec.library_name)
        assert cfg["vision_cfg"]["layers"] == spec.n_taps, name
        assert all(0 <= i < spec.n_taps for i in spec.default_layers), name
        if spec.default_tag:
            assert spec.default_tag in open_clip.list_pretrained_tags_by_model(spec.library_name)
    assert spec_for("clip_vit_b16_plus_240").library_name == "ViT-B-16-plus-240"
    assert spec_for("clip_vit_l14_336").default_tag == "openai"


def test_dinov2_with_registers_builds_offline_at_its_native_grid():
    backbone = load_backbone("dinov2_vitb14_reg4", "random", layers=[0])  # one block runs
    assert backbone.model.num_prefix_tokens == 5  # CLS + 4 registers, dropped from the taps
    assert backbone.preprocessing.input_size == (518, 518)
    (tap,) = backbone.taps(torch.zeros(1, 3, 518, 518))
    assert tuple(tap.shape) == (1, 768, 37, 37)


def test_tiny_clip_also_serves_feature_extraction():
    backbone = load_backbone("clip_tiny", "random", layers=[-1])
    (tap,) = backbone.taps(torch.zeros(1, 3, 64, 64))
    assert tuple(tap.shape) == (1, 64, 8, 8) and backbone.layers == (3,)


# --- visual outputs ------------------------------------------------------------------------


def test_cls_embedding_is_open_clips_image_embedding(tiny, images):
    out = tiny.encode_image(images)
    with torch.no_grad():
        expected = tiny.model.encode_image(images)
    assert out.cls.shape == (2, 32) and out.patches == () and out.blocks == ()
    assert torch.allclose(out.cls, expected, atol=1e-6)


def test_taps_are_block_outputs_without_cls_through_ln_post_and_proj(tiny, images):
    v = tiny.visual
    with torch.no_grad():
        raw = v.forward_intermediates(images, indices=[1, 3], output_fmt="NLC")
    raw = raw["image_intermediates"]  # (B, 64, width), CLS already dropped by open_clip
    out = tiny.encode_image(images, blocks=[-1, 1])
    assert out.blocks == (1, 3)
    h, w = tiny.grid
    for got, tokens in zip(out.patches, raw):
        with torch.no_grad():
            want = (v.ln_post(tokens) @ v.proj).reshape(2, h, w, -1)
        assert got.shape == (2, h, w, 32)
        assert torch.allclose(got, want, atol=1e-5)
    plain = tiny.encode_image(images, blocks=[3], token_path="raw").patches[0]
    assert torch.allclose(plain, raw[1].reshape(2, h, w, -1), atol=1e-5)
    normed = tiny.encode_image(images, blocks=[3], token_path="ln_post").patches[0]
    assert normed.shape == (2, h, w, 64)
    with pytest.raises(ConfigError, match="token path 'cls'"):
        tiny.encode_image(images, blocks=[3], token_path="cls")


def test_negative_block_indices_count_from_the_end(tiny, images):
    assert tiny.resolve_blocks([-1]) == (3,)
    assert tiny.resolve_blocks([-4, 2]) == (0, 2)
    assert tiny.resolve_blocks("last2") == (2, 3)
    a = tiny.encode_image(images, blocks=[-2]).patches[0]
    b = tiny.encode_image(images, blocks=[2]).patches[0]
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match=r"layer -5 outside -4\.\.3"):
        tiny.encode_image(images, blocks=[-5])


def test_images_are_encoded_independently_of_their_batch(tiny, images):
    both = tiny.encode_image(images, blocks=[0])
    alone = tiny.encode_image(images[1:], blocks=[0])
    assert torch.allclose(both.cls[1:], alone.cls, atol=1e-5)
    assert torch.allclose(both.patches[0][1:], alone.patches[0], atol=1e-5)


# --- window pass ---------------------------------------------------------------------------


def test_window_tokens_are_cls_plus_the_window_patches_after_positions(tiny, images):
    v = tiny.visual
    seen = {}
    # open_clip's own token sequence: the input of patch_dropout, positions already added.
    hook = v.patch_dropout.register_forward_hook(
        lambda m, args, out: seen.setdefault("full", args[0])
    )
    with torch.no_grad():
        tiny.model.encode_image(images)
    hook.remove()
    hook = v.ln_pre.register_forward_hook(lambda m, args, out: seen.setdefault("windows", args[0]))
    windows = window_indices(tiny.grid, 2)
    tiny.encode_windows(images, windows)
    hook.remove()
    h, w = tiny.grid
    fed = seen["windows"].reshape(2, (h - 1) * (w - 1), 5, -1)
    for r, c in [(0, 0), (0, w - 2), (3, 4), (h - 2, w - 2)]:
        j = r * (w - 1) + c
        # 1 + row-major patch index: CLS is position 0 of the sequence.
        picks = [0, 1 + r * w + c, 1 + r * w + c + 1, 1 + (r + 1) * w + c, 1 + (r + 1) * w + c + 1]
        assert torch.allclose(fed[:, j], seen["full"][:, picks], atol=1e-6)


def test_window_embedding_sees_only_its_window(tiny, images):
    windows = window_indices(tiny.grid, 3)
    before = tiny.encode_windows(images, windows, chunk=25)
    assert before.shape == (2, len(windows), 32)
    changed = images.clone()
    changed[:, :, 40:, 40:] = 5.0  # patches of rows and columns 5..7 (8 px patches)
    after = tiny.encode_windows(changed, windows)
    w = tiny.grid[1] - 2  # window positions per row
    untouched = [r * w + c for r in range(6) for c in range(6) if r + 2 < 5 or c + 2 < 5]
    touched = sorted(set(range(len(windows))) - set(untouched))
    assert torch.allclose(before[:, untouched], after[:, untouched], atol=1e-5)
    assert not torch.allclose(before[:, touched], after[:, touched], atol=1e-3)
    # One window run by itself, through the model's own blocks, gives the same embedding.
    alone = tiny.encode_windows(images[:1], windows[touched[0] : touched[0] + 1])
    assert torch.allclose(alone[0, 0], before[0, touched[0]], atol=1e-5)


def test_window_indices_outside_the_grid_are_refused(tiny, images):
    with pytest.raises(ValueError, match="outside"):
        tiny.encode_windows(images, torch.tensor([[0, 64]]))


# --- input size ----------------------------------------------------------------------------


def test_position_interpolation_is_the_identity_at_native_size(tiny, images):
    native = load_clip("clip_tiny", "random", seed=0, input_size=64)
    assert torch.equal(native.visual.positional_embedding, tiny.visual.positional_embedding)
    assert torch.equal(native.encode_image(images).cls, tiny.encode_image(images).cls)
    pos = torch.randn(1 + 24 * 24, 16)
    assert interpolate_positional_embedding(pos, (24, 24), (24, 24)) is pos


def test_position_interpolation_keeps_cls_and_resamples_the_grid(tiny):
    bigger = load_clip("clip_tiny", "random", seed=0, input_size=96)
    assert bigger.grid == (12, 12) and bigger.preprocessing.input_size == (96, 96)
    pos = bigger.visual.positional_embedding
    assert pos.shape == (1 + 144, 64)
    assert torch.equal(pos[0], tiny.visual.positional_embedding[0])
    out = bigger.encode_image(torch.randn(1, 3, 96, 96), blocks=[-1])
    assert out.patches[0].shape == (1, 12, 12, 32)
    # ViT-L/14 at 518: 24x24 -> 37x37; a smooth field stays close to itself, CLS untouched.
    rows, cols = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 24), indexing="ij")
    field = torch.stack([rows, cols], -1).reshape(-1, 2)
    pos = torch.cat([torch.tensor([[7.0, -7.0]]), field])
    big = interpolate_positional_embedding(pos, (24, 24), (37, 37), mode="bicubic")
    assert big.shape == (1 + 37 * 37, 2) and big[0].tolist() == [7.0, -7.0]
    grid = big[1:].reshape(37, 37, 2)
    assert torch.all(grid[1:, :, 0] >= grid[:-1, :, 0] - 1e-6)  # still increasing down rows
    assert grid[18, 18].tolist() == pytest.approx([0.5, 0.5], abs=1e-3)  # centre stays centre


def test_input_size_must_be_a_multiple_of_the_patch():
    with pytest.raises(ConfigError, match="not a multiple of the patch 8x8"):
        load_clip("clip_tiny", "random", input_size=60)


# --- weights -------------------------------------------------------------------------------


def test_saved_state_dict_reloads_to_identical_embeddings(tmp_path, tiny, images):
    source = load_clip("clip_tiny", "random", seed=1)
    path = tmp_path / "tiny.pth"
    torch.save(source.model.state_dict(), path)
    loaded = load_clip("clip_tiny", str(path))
    assert loaded.weights.identity.startswith("file:tiny.pth:sha256=")
    assert torch.equal(loaded.encode_image(images).cls, source.encode_image(images).cls)
    text = ["a photo of a bottle", "a damaged bottle"]
    assert torch.equal(loaded.encode_text(text), source.encode_text(text))
    assert not torch.equal(loaded.encode_text(text), tiny.encode_text(text))  # not seed 0


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_openai_style_torchscript_archive_loads(tmp_path, images):
    """An archive as OpenAI ships them: TorchScript, fp16 weights, three integer entries."""
    source = load_clip("clip_tiny", "random", seed=2)
    archived = load_clip("clip_tiny", "random", seed=2).model.half()
    for key, value in (("input_resolution", 64), ("context_length", 77), ("vocab_size", 49408)):
        archived.__dict__.pop(key, None)  # open_clip keeps two of them as plain ints
        archived.register_buffer(key, torch.tensor(value))
    path = tmp_path / "tiny-openai.pt"
    torch.jit.script(archived).save(str(path))
    loaded = load_clip("clip_tiny", str(path))
    source.model.half().float()  # the archive's precision, back in fp32
    assert torch.equal(loaded.encode_image(images).cls, source.encode_image(images).cls)
    assert torch.equal(loaded.encode_text(["a screw"]), source.encode_text(["a screw"]))


def test_a_checkpoint_of_the_wrong_architecture_is_refused(tmp_path):
    path = tmp_path / "visual.pth"
    torch.save(load_clip("clip_tiny", "random").visual.state_dict(), path)
    with pytest.raises(WeightsError, match="wrong architecture"):
        load_clip("clip_tiny", str(path))


def test_missing_weights_give_the_clear_error(tmp_path, offline_caches):
    with pytest.raises(WeightsError, match="weights file does not exist.*tags: laion400m_e31"):
        load_clip("clip_vit_b16_plus_240", str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="never downloads") as info:
        load_clip("clip_vit_b16_plus_240", "pretrained")
    assert "models--timm--vit_base_patch16_plus_clip_240.laion400m_e31" in str(info.value)
    assert "vit_b_16_plus_240-laion400m_e31" in str(info.value)  # open_clip's URL cache name
    with pytest.raises(WeightsError, match="never downloads.*vit_large_patch14_clip_336.openai"):
        load_clip("clip_vit_l14_336", "openai")
    with pytest.raises(WeightsError, match="no published weights.*weights: random"):
        load_clip("clip_tiny", "pretrained")
    with pytest.raises(ConfigError, match="not a CLIP"):
        load_clip("resnet18", "random")


# --- text ----------------------------------------------------------------------------------


def test_tokenizer_is_open_clips_bundled_one_and_hub_tokenizers_are_refused():
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = bundled_tokenizer("ViT-L-14-336")
    assert isinstance(tokenizer, SimpleTokenizer)
    tokens = tokenizer(["a photo of a metal nut"])
    assert tokens.shape == (1, 77) and tokens[0, 0] == tokenizer.sot_token_id
    with pytest.raises(ConfigError, match="Hugging Face tokenizer"):
        bundled_tokenizer("ViT-B-16-SigLIP")


def test_text_prototypes_are_unit_means_per_state(tiny):
    normal = ["a photo of a good bottle", "a flawless bottle", "a bottle"]
    anomalous = ["a damaged bottle", "a bottle with a defect"]
    protos = text_prototypes(tiny, normal, anomalous, batch_size=2)
    assert protos.shape == (2, 32)
    assert torch.allclose(protos.norm(dim=1), torch.ones(2), atol=1e-6)
    # The mean does not depend on the order of the sentences nor on the batching.
    again = text_prototypes(tiny, normal[::-1], anomalous[::-1], batch_size=5)
    assert torch.allclose(protos, again, atol=1e-6)
    # One sentence per state: its own direction, whether or not sentences are normalised first.
    single = text_prototypes(tiny, normal[:1], anomalous[:1], normalize_each=False)
    assert torch.allclose(single, F.normalize(tiny.encode_text([normal[0], anomalous[0]])))
    with pytest.raises(ConfigError, match="no anomalous prompts"):
        text_prototypes(tiny, normal, [])
