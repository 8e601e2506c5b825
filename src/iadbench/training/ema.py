"""Exponential moving average of a model's weights, kept beside the trained weights.

Averaging damps the step-to-step noise of small-batch training, which matters most for
reconstruction-style detectors whose score is a residual. The decay ramps up as
``min(decay, (1 + t) / (10 + t))`` after ``t`` updates (timm's EMA warm-up), so a run of a few
hundred steps with decay 0.9999 does not end up holding almost its initial weights.
Non-float entries (step counters, integer buffers) are copied, not averaged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from iadbench.training.checkpoint import cpu_state


class Ema:
    """Shadow copy of ``model.state_dict()`` updated after every optimiser step."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if shadow.is_floating_point():
                shadow.mul_(decay).add_(value.detach().to(shadow.dtype), alpha=1.0 - decay)
            else:
                shadow.copy_(value)

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Run the block with the averaged weights in ``model``; restore the trained ones after."""
        trained = cpu_state(model)
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(trained)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
