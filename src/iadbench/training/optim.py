"""Optimiser and learning-rate schedule built from a ``TrainConfig``.

Both are rebuilt identically on resume and then overwritten with the checkpointed state, so the
construction here must depend on nothing but the config and the step count.
"""

from __future__ import annotations

import math

import torch

from iadbench.training.config import TrainConfig

SGD_MOMENTUM = 0.9


def _groups(model: torch.nn.Module, lr: float) -> list[dict]:
    """Trainable parameters, split by the model's optional ``lr_multipliers()``.

    ``lr_multipliers()`` maps a parameter-name prefix to a factor of the base lr (FE-CLIP's
    ``fc_patch`` at 1/100); parameters matching no prefix get the base lr.
    """
    mults = model.lr_multipliers() if hasattr(model, "lr_multipliers") else {}
    by_mult: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            mult = next((m for prefix, m in mults.items() if name.startswith(prefix)), 1.0)
            by_mult.setdefault(float(mult), []).append(param)
    return [{"params": ps, "lr": lr * m} for m, ps in sorted(by_mult.items(), reverse=True)]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD (momentum 0.9) over the model's trainable parameters."""
    groups = _groups(model, cfg.lr)
    if not groups:
        raise ValueError("model has no trainable parameters")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=SGD_MOMENTUM, weight_decay=cfg.weight_decay)


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Multiplier of the base lr for the optimiser step after ``step`` completed steps.

    The first ``warmup_steps`` steps ramp linearly up to 1 (step i uses ``(i + 1) / warmup``), so
    early updates of a freshly initialised model stay small. Cosine then goes from 1 to 0 over
    the remaining steps; the last step itself uses ``(1 + cos(pi * (T - 1) / T)) / 2``, i.e.
    about ``(pi / 2T)^2`` for ``T`` steps after warm-up.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    progress = min(step - warmup_steps, span) / span
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step scheduler (``scheduler.step()`` after every optimiser step)."""
    schedule = cfg.schedule
    warmup = cfg.warmup_epochs * total_steps // cfg.epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(schedule, step, total_steps, warmup)
    )
