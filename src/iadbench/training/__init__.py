"""Shared training loop for trained methods (classifier gates, CLIP adapters, welding models).

Typical use inside a Snakemake rule::

    cfg = TrainConfig.from_config(method_cfg)
    torch.manual_seed(cfg.seed)                  # the caller seeds the model initialisation
    model = build_model(...)
    resume = resume_dir_for("results/.resume", "gate", category, params=method_cfg)
    summary = train_model(model, dataset, loss_fn, cfg, out_dir, resume,
                          device=device, params_hash=params_hash(method_cfg), val_fn=val)
    load_weights(model, out_dir / "best.pt", device)

Resume state lives outside the Snakemake output, which Snakemake deletes when a job fails.
"""

from __future__ import annotations

from iadbench.training.checkpoint import load_weights, params_hash, resume_dir_for
from iadbench.training.config import TrainConfig
from iadbench.training.loop import train_model

__all__ = ["TrainConfig", "load_weights", "params_hash", "resume_dir_for", "train_model"]
