"""Optimiser and learning-rate schedule built from a ``TrainConfig``.

Both are rebuilt identically on resume and then overwritten with the checkpointed state, so the
construction here must depend on nothing but the config and the step count.
"""

from __future__ import annotations

import math

import torch

from iadbench.training.config import TrainConfig

SGD_MOMENTUM = 0.9


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD (momentum 0.9) over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=SGD_MOMENTUM, weight_decay=cfg.weight_decay)


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base lr for the optimiser step after ``step`` completed steps.

    Cosine goes from 1 at step 0 to 0 after ``total_steps``; the last step itself uses
    ``(1 + cos(pi * (T - 1) / T)) / 2``, i.e. about ``(pi / 2T)^2``.
    """
    if schedule == "constant":
        return 1.0
    progress = min(step, total_steps) / max(total_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step scheduler (``scheduler.step()`` after every optimiser step)."""
    schedule = cfg.schedule
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(schedule, step, total_steps)
    )
