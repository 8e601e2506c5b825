"""Training hyper-parameters shared by every trained method, validated once at the boundary.

A method's YAML block mixes its own keys with the loop's; ``TrainConfig.from_config`` picks out
the loop's keys so each method does not re-implement (or forget) the checks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from iadbench.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")


def _bad(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"training config: {key!r} must be {expected}, got {value!r}")


def _as_int(key: str, value: Any, minimum: int | None) -> int:
    # bool is an int subclass; ``epochs: true`` is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _bad(key, "an integer" + (f" >= {minimum}" if minimum is not None else ""), value)
    if minimum is not None and value < minimum:
        raise _bad(key, f"an integer >= {minimum}", value)
    return value


def _as_float(key: str, value: Any, *, positive: bool) -> float:
    expected = "a finite number" + (" > 0" if positive else " >= 0")
    if isinstance(value, bool):
        raise _bad(key, expected, value)
    if isinstance(value, str):
        # YAML 1.1 reads ``1e-3`` (no dot) as a string; accept it rather than surprise users.
        try:
            value = float(value)
        except ValueError:
            raise _bad(key, expected, value) from None
    if not isinstance(value, (int, float)):
        raise _bad(key, expected, value)
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise _bad(key, expected, value)
    return value


def _as_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise _bad(key, "one of " + ", ".join(choices), value)
    return value.lower()


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of ``train_model``; validated on construction, so bad values fail early.

    ``amp`` asks for autocast + GradScaler, which the loop applies only on CUDA devices.
    ``schedule="cosine"`` anneals per optimiser step from ``lr`` to 0 over the whole run.
    ``betas``: Adam/AdamW's moment decays (APRIL-GAN trains with 0.5, 0.999).
    ``warmup_epochs``: linear lr warm-up over that many epochs' steps before the schedule
    (cosine then anneals over the remaining steps). ``ema``: decay of an exponential moving
    average of the weights (None = off), which validation, ``best.pt`` and ``last.pt`` then use.
    ``grad_clip``: maximum global gradient norm (None = no clipping).
    """

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "constant"
    seed: int = 0
    amp: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: int = 0
    ema: float | None = None
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise through the back door, once
        set_(self, "epochs", _as_int("epochs", self.epochs, 1))
        set_(self, "batch_size", _as_int("batch_size", self.batch_size, 1))
        set_(self, "lr", _as_float("lr", self.lr, positive=True))
        set_(self, "weight_decay", _as_float("weight_decay", self.weight_decay, positive=False))
        set_(self, "optimizer", _as_choice("optimizer", self.optimizer, OPTIMIZERS))
        set_(self, "schedule", _as_choice("schedule", self.schedule, SCHEDULES))
        set_(self, "seed", _as_int("seed", self.seed, None))
        if not isinstance(self.amp, bool):
            raise _bad("amp", "true or false", self.amp)
        betas = self.betas
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise _bad("betas", "two numbers in [0, 1)", betas)
        betas = tuple(_as_float("betas", b, positive=False) for b in betas)
        if not all(b < 1 for b in betas):
            raise _bad("betas", "two numbers in [0, 1)", self.betas)
        set_(self, "betas", betas)
        set_(self, "warmup_epochs", _as_int("warmup_epochs", self.warmup_epochs, 0))
        if self.warmup_epochs > self.epochs:
            raise _bad("warmup_epochs", f"at most epochs ({self.epochs})", self.warmup_epochs)
        if self.ema is not None:
            ema = _as_float("ema", self.ema, positive=True)
            if ema >= 1:
                raise _bad("ema", "a decay in (0, 1) or null", self.ema)
            set_(self, "ema", ema)
        if self.grad_clip is not None:
            set_(self, "grad_clip", _as_float("grad_clip", self.grad_clip, positive=True))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> TrainConfig:
        """Build from a method's config dict, ignoring keys that belong to the method itself."""
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"training config must be a mapping, got {type(cfg).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints and hashing)."""
        return {**dataclasses.asdict(self), "betas": list(self.betas)}
