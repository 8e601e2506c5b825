"""Layer fusion: how the per-tap channel blocks of a cached feature map enter a method.

The store keeps every tap's block side by side along the channel axis (``meta["layer_dims"]``,
in tap order; an old cache without it counts as one block). A method entry's ``fusion:`` picks
how those blocks are combined before fitting and scoring, either as a string shorthand or as a
mapping with a ``mode``:

* ``concat`` (default): all blocks unchanged (identity).
* ``single`` or ``{mode: single, layer: L}``: only tap ``L`` (a Python index into the taps;
  default -1 = the last, deepest tap).
* ``{mode: weighted, weights: [w_1, ..., w_L]}``: block ``l`` is multiplied by ``w_l >= 0``, so
  its share of a squared L2 distance scales by ``w_l**2``; a zero weight drops the block.
* ``decay`` or ``{mode: decay, factor: f}`` (0 < f <= 1, default 0.5): ``w_l = f**l`` for taps
  in depth order, i.e. every deeper tap at ``f`` times the weight of the one before; with
  PatchCore's two taps ``[1, 0.5]``, its default (docs/reference-parity.md, the parity study).
* ``adaptive``: weights fitted on the training features, ``w_l = sqrt(V / (L * V_l))`` where
  ``V_l`` is the total variance of block ``l`` (sum of its per-channel variances over all
  training patches) and ``V = sum_l V_l``. Every block then carries the same total variance
  ``V / L`` (equal expected contribution to squared distances between patches) and the total
  variance, hence the overall distance scale, stays what ``concat`` gives.

``Fusion.fit`` returns a JSON-able :class:`FusionState` (the per-block weights) that a method
saves with its state, and :meth:`FusionState.apply` turns fp16 memmaps into float32 chunk-wise,
so the cache is read once and only the fused output is held in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iadbench.errors import CacheError, ConfigError

MODES = ("concat", "single", "weighted", "decay", "adaptive")
# JSON Schema of a method entry's ``fusion:`` (the shapes :meth:`Fusion.from_config` reads).
SCHEMA = {
    "oneOf": [
        {"enum": ["concat", "single", "adaptive", "decay"]},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode"],
            "properties": {"mode": {"enum": ["concat", "adaptive"]}},
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode"],
            "properties": {
                "mode": {"const": "single"},
                "layer": {"type": "integer", "description": "tap index (default -1 = last)"},
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode", "weights"],
            "properties": {
                "mode": {"const": "weighted"},
                "weights": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "number", "minimum": 0},
                    "description": "one multiplier per tap",
                },
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode"],
            "properties": {
                "mode": {"const": "decay"},
                "factor": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 1,
                    "description": "weight ratio of each tap to the one before (default 0.5)",
                },
            },
        },
    ]
}
CHUNK_ELEMS = 2**24


def layer_dims_of(meta: dict, n_channels: int) -> list[int]:
    """Per-tap block widths recorded by the extractor; one block when the cache predates them."""
    dims = [int(d) for d in meta.get("layer_dims") or [n_channels]]
    if any(d <= 0 for d in dims) or sum(dims) != n_channels:
        raise CacheError(f"feature meta layer_dims {dims} do not add up to {n_channels} channels")
    return dims


def _row_chunks(features: np.ndarray) -> range:
    """Start indices of image chunks of at most ``CHUNK_ELEMS`` values each."""
    per_row = max(1, int(np.prod(features.shape[1:])))
    return range(0, features.shape[0], max(1, CHUNK_ELEMS // per_row))


def block_variances(features: np.ndarray, layer_dims: Sequence[int]) -> np.ndarray:
    """Total variance of each channel block over all patches, in one pass over the memmap.

    Sums are taken in float64 around the first chunk's channel means, which keeps the one-pass
    formula free of cancellation for features far from zero.
    """
    n_channels = features.shape[-1]
    step = _row_chunks(features).step
    shift = np.asarray(features[:step], dtype=np.float64).reshape(-1, n_channels).mean(0)
    total = np.zeros(n_channels)
    total_sq = np.zeros(n_channels)
    count = 0
    for start in _row_chunks(features):
        block = np.asarray(features[start : start + step], dtype=np.float64)
        block = block.reshape(-1, n_channels) - shift
        total += block.sum(0)
        total_sq += np.square(block).sum(0)
        count += block.shape[0]
    per_channel = np.maximum(total_sq / count - np.square(total / count), 0.0)
    bounds = np.cumsum([0, *layer_dims])
    return np.array([per_channel[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])


@dataclass(frozen=True)
class FusionState:
    """Fitted fusion: one weight per input block (0 = dropped), saved in a method's state.json."""

    mode: str
    layer_dims: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def channels(self) -> np.ndarray:
        """Input channel indices that survive fusion, in output order."""
        bounds = np.cumsum([0, *self.layer_dims])
        kept = [np.arange(bounds[i], bounds[i + 1]) for i, w in enumerate(self.weights) if w > 0]
        return np.concatenate(kept)

    @property
    def scales(self) -> np.ndarray:
        """Multiplier of each output channel."""
        return np.concatenate(
            [np.full(d, w, np.float32) for d, w in zip(self.layer_dims, self.weights) if w > 0]
        )

    @property
    def output_dim(self) -> int:
        return int(sum(d for d, w in zip(self.layer_dims, self.weights) if w > 0))

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "layer_dims": list(self.layer_dims),
            "weights": list(self.weights),
            "output_dim": self.output_dim,
        }

    @classmethod
    def from_dict(cls, state: dict) -> FusionState:
        return cls(
            mode=state["mode"],
            layer_dims=tuple(int(d) for d in state["layer_dims"]),
            weights=tuple(float(w) for w in state["weights"]),
        )

    def apply(self, features: np.ndarray, select: np.ndarray | None = None) -> np.ndarray:
        """(N, ..., C) fp16/fp32 -> (N, ..., D) float32; ``select`` picks output channels."""
        if features.shape[-1] != sum(self.layer_dims):
            raise CacheError(
                f"features have {features.shape[-1]} channels, fusion was fitted on "
                f"{sum(self.layer_dims)} (layer_dims {list(self.layer_dims)})"
            )
        channels, scales = self.channels, self.scales
        if select is not None:
            channels, scales = channels[select], scales[select]
        identity = len(channels) == features.shape[-1] and bool((scales == 1).all())
        identity = identity and bool((channels == np.arange(len(channels))).all())
        out = np.empty((*features.shape[:-1], len(channels)), dtype=np.float32)
        step = _row_chunks(features).step
        for start in _row_chunks(features):
            block = features[start : start + step]
            if identity:
                out[start : start + step] = block
            else:
                out[start : start + step] = np.take(block, channels, axis=-1)
                out[start : start + step] *= scales
        return out


@dataclass(frozen=True)
class Fusion:
    """A validated ``fusion:`` config entry (see the module docstring)."""

    mode: str = "concat"
    layer: int = -1
    weights: tuple[float, ...] = ()
    factor: float = 0.5

    @classmethod
    def from_config(cls, cfg: str | dict | None) -> Fusion:
        """Parse ``concat`` / ``single`` / ``adaptive`` or ``{mode: ..., layer/weights: ...}``."""
        if cfg is None:
            return cls()
        entry = {"mode": cfg} if isinstance(cfg, str) else cfg
        if not isinstance(entry, dict):
            raise ConfigError(f"fusion must be a mode name or a mapping, got {cfg!r}")
        mode = entry.get("mode", "concat")
        if mode not in MODES:
            raise ConfigError(f"unknown fusion mode {mode!r} (known: {', '.join(MODES)})")
        keys = {"single": {"layer"}, "weighted": {"weights"}, "decay": {"factor"}}
        allowed = {"mode"} | keys.get(mode, set())
        if extra := set(entry) - allowed:
            raise ConfigError(f"fusion mode {mode!r} takes no key(s) {sorted(extra)}")
        weights = tuple(float(w) for w in entry.get("weights", ()))
        if mode == "weighted" and (not weights or min(weights) < 0 or max(weights) <= 0):
            raise ConfigError(
                f"fusion weighted needs weights >= 0 with at least one > 0, got {list(weights)}"
            )
        factor = float(entry.get("factor", 0.5))
        if not 0.0 < factor <= 1.0:
            raise ConfigError(f"fusion decay factor must be in (0, 1], got {factor}")
        return cls(mode=mode, layer=int(entry.get("layer", -1)), weights=weights, factor=factor)

    def fit(self, features: np.ndarray, layer_dims: Sequence[int]) -> FusionState:
        """Per-block weights for these (training) features; only ``adaptive`` reads them."""
        n_layers = len(layer_dims)
        if self.mode == "concat":
            weights = [1.0] * n_layers
        elif self.mode == "single":
            if not -n_layers <= self.layer < n_layers:
                raise ConfigError(f"fusion layer {self.layer} out of range for {n_layers} taps")
            weights = [0.0] * n_layers
            weights[self.layer] = 1.0
        elif self.mode == "weighted":
            if len(self.weights) != n_layers:
                raise ConfigError(
                    f"fusion weights {list(self.weights)} must have one entry per tap "
                    f"({n_layers}: layer_dims {list(layer_dims)})"
                )
            weights = list(self.weights)
        elif self.mode == "decay":
            weights = [self.factor**i for i in range(n_layers)]
        else:
            variances = block_variances(features, layer_dims)
            if (variances <= 0).any():
                raise ValueError(f"adaptive fusion: a tap has zero variance ({variances})")
            weights = np.sqrt(variances.sum() / (n_layers * variances)).tolist()
        return FusionState(self.mode, tuple(int(d) for d in layer_dims), tuple(weights))
