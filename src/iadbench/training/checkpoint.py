"""Where resume state lives, how it is keyed, and how saved weights are read back.

Resume state is kept OUTSIDE the Snakemake output directory on purpose: Snakemake deletes the
outputs of a failed job, which would throw away exactly the checkpoint needed to resume it. The
directory is keyed by a hash of the training parameters so that a changed config lands in a
fresh directory and can never pick up stale state.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from iadbench.errors import WeightsError
from iadbench.io import atomic_path

CHECKPOINT_NAME = "checkpoint.pt"


def params_hash(params: dict[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of ``params`` as canonical (sorted-key) JSON."""
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resume_dir_for(root: str | os.PathLike, *parts: str, params: dict[str, Any]) -> Path:
    """``root/*parts/<params_hash(params)>``: a resume directory private to these parameters.

    Put ``root`` outside every Snakemake output (see the module docstring).
    """
    return Path(root, *parts, params_hash(params))


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copy of a model's state_dict (a snapshot later steps cannot mutate)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save_torch(target: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` through ``atomic_path``: the file is either complete or absent."""
    with atomic_path(target) as tmp:
        torch.save(obj, tmp)


def load_weights(
    model: torch.nn.Module, path: str | os.PathLike, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Load a state_dict written by ``train_model`` (``last.pt``/``best.pt``) onto ``device``.

    Returns the model (moved to ``device``) so calls can be chained.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: trained weights not found")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle/zip errors vary by torch version
        raise WeightsError(f"{path}: cannot read trained weights ({exc})") from exc
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: weights do not fit the model ({exc})") from exc
    return model.to(device)
