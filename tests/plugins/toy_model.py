"""Implementation of :mod:`toy_kind`: goes through iadbench.training like any trained method.

``TOY_STOP_AFTER_STEPS=N`` in the environment makes training fail after N optimiser steps, so
tests can interrupt a Snakemake job and check that the rerun resumes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from toy_kind import ToyParams

from iadbench.io import save_json
from iadbench.methods.base import Method, MethodInputs
from iadbench.training import TrainConfig, load_weights, train_model


def _patches(inputs: MethodInputs) -> torch.Tensor:
    feats = np.asarray(inputs.require_features("toy").features, dtype=np.float32)
    return torch.from_numpy(feats.reshape(-1, feats.shape[-1]))


class ToyAutoencoder(Method):
    kind = "toy"
    params_class = ToyParams

    def _model(self, dim: int) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        hidden = int(self.params.hidden)
        return torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.Linear(hidden, dim))

    def train(self, parts: list[MethodInputs], out_dir: Path, resume_dir: Path) -> dict:
        patches = torch.cat([_patches(p) for p in parts])
        model = self._model(patches.shape[1])
        stop = int(os.environ.get("TOY_STOP_AFTER_STEPS", "0"))

        def on_step(step: int) -> None:
            if stop and step >= stop:
                raise RuntimeError(f"injected interruption after {step} steps")

        summary = train_model(
            model,
            torch.utils.data.TensorDataset(patches),
            lambda m, batch: F.mse_loss(m(batch[0]), batch[0]),
            TrainConfig.from_config(self.cfg),
            out_dir,
            resume_dir,
            params_hash=resume_dir.name,
            on_step=on_step,
        )
        save_json(out_dir / "state.json", {**summary, "dim": int(patches.shape[1])})
        return summary

    def score(self, state_dir, inputs: MethodInputs, out_size):
        feats = np.asarray(inputs.require_features("toy").features, dtype=np.float32)
        n, h, w, c = feats.shape
        model = load_weights(self._model(c), Path(state_dir) / "last.pt")
        with torch.no_grad():
            x = torch.from_numpy(feats.reshape(-1, c))
            error = ((model(x) - x) ** 2).mean(1).reshape(n, 1, h, w)
        maps = F.interpolate(error, size=out_size, mode="bilinear", align_corners=False)[:, 0]
        return maps.amax((1, 2)).double().numpy(), maps.numpy()
