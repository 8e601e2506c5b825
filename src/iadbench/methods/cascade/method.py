"""Gate -> heatmap cascade (METHODS §11), fitted on ``val`` and applied unchanged to ``test``.

It reads two other methods' cached scores (``uses: {gate: ..., heatmap: ...}``): the gate's
calibrated probability and the heatmap method's raw image score. The "fit", on ``val`` only:

1. calibrate the heatmap score into a probability (Platt or isotonic; one global, monotone map,
   so a score never depends on its batch); the gate's score is already calibrated;
2. flag ``degenerate_scores`` when either method's val scores all lie within 1e-3 (the earlier
   system swept thresholds over collapsed scores without noticing);
3. for each (t_low, t_high) of the grid (or the configured pair), route every val image —
   ``p_gate < t_low`` or ``p_gate > t_high`` keeps ``p_gate``, the uncertain band takes the
   heatmap probability — and choose the operating threshold (max F1 or a target recall);
4. without a configured pair, keep the pair with the fewest heatmap calls whose val recall is at
   least the heatmap method's own val recall minus ``max_recall_loss``; or, with a budget
   ``max_call_rate``, the pair of best val F1 (then recall, then AUROC, then *more* calls: ties
   spend the budget the user accepted, on the stronger ranker) among those that call the
   heatmap method on at most that share of val images. The budget's candidates are the
   grid plus every band between two val gate probabilities that holds at most
   ``floor(max_call_rate * n_val)`` val images, so a band within the budget exists whenever that
   is one image or more, and the budget is never exceeded on val (test images may fall in the
   band more or less often).

The final score keeps the heatmap method's ranking where it ran: a routed image's score is the
calibrated heatmap probability, an unrouted one's the gate probability, on one probability scale.

Scoring routes each image the same way and records the route, so the heatmap call rate and the
latency of the cascade follow from the score table. The heatmap model's ECE is kept before and
after calibration (METHODS §11): ``val_heatmap_ece_raw``/``val_heatmap_ece`` in the state, and
the ``p_heatmap_raw``/``p_heatmap`` columns that evaluation turns into ``ece_heatmap_raw`` and
``ece_heatmap``; the raw ECE exists only where the raw scores lie in [0, 1] (a probability
before calibration, e.g. a CLIP kind's), not for distances such as PatchCore's. There are no
pixel maps on the cascade row: the heatmap method's own row has them.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.errors import ConfigError
from iadbench.io import save_json, save_text
from iadbench.methods.base import Method, MethodInputs
from iadbench.methods.cascade.params import CascadeParams
from iadbench.metrics.calibration import Calibrator, ece
from iadbench.metrics.image import image_auroc
from iadbench.metrics.operating import at_threshold, threshold_for_recall, threshold_max_f1

log = logging.getLogger(__name__)
DEGENERATE_SPREAD = 1e-3


def route(p_gate: np.ndarray, p_heatmap: np.ndarray, t_low: float, t_high: float):
    """Final probabilities and which images went to the heatmap method (the uncertain band)."""
    uncertain = (p_gate >= t_low) & (p_gate <= t_high)
    return np.where(uncertain, p_heatmap, p_gate), uncertain


def unit_interval(scores: np.ndarray) -> bool:
    """Whether raw scores can be read as probabilities (all in [0, 1]), so their ECE exists."""
    return bool(np.all((scores >= 0.0) & (scores <= 1.0)))


def aligned(inputs: MethodInputs, role: str) -> np.ndarray:
    """The ``role`` method's scores in the order of ``inputs.index``."""
    table = inputs.scores[role].set_index("sample_id")
    return table.loc[inputs.index["sample_id"], "score"].to_numpy(dtype=np.float64)


def budget_bands(p_gate: np.ndarray, max_call_rate: float) -> list[tuple[float, float]]:
    """Every band ``[t_low, t_high]`` of val gate probabilities within the call budget.

    Both ends are distinct val values (ends included, as :func:`route` includes them) and the
    band holds at most ``floor(max_call_rate * n)`` val images; a value whose ties alone exceed
    that starts no band.
    """
    values, counts = np.unique(np.asarray(p_gate, dtype=np.float64), return_counts=True)
    most = math.floor(max_call_rate * len(p_gate) + 1e-9)
    before = np.r_[0, np.cumsum(counts)]  # images below each distinct value
    bands = []
    for i in range(len(values)):
        j = i
        while j < len(values) and before[j + 1] - before[i] <= most:
            bands.append((float(values[i]), float(values[j])))
            j += 1
    return bands


class Cascade(Method):
    kind = "cascade"
    params_class = CascadeParams
    params: CascadeParams

    def _threshold(self, labels: np.ndarray, scores: np.ndarray) -> float:
        if self.params.operating == "recall":
            return threshold_for_recall(labels, scores, float(self.params.target_recall))
        return threshold_max_f1(labels, scores)

    def _pairs(self, p_gate: np.ndarray) -> list[tuple[float, float]]:
        if self.params.thresholds is not None:
            return [tuple(map(float, self.params.thresholds))]
        pairs = [
            (float(lo), float(hi))
            for lo in self.params.grid_low
            for hi in self.params.grid_high
            if lo < hi
        ]
        if self.params.max_call_rate is not None:
            pairs += budget_bands(p_gate, float(self.params.max_call_rate))
        return list(dict.fromkeys(pairs))  # in order, without repeats

    def sweep(self, labels: np.ndarray, p_gate: np.ndarray, p_heatmap: np.ndarray) -> pd.DataFrame:
        """One row per (t_low, t_high): call rate, operating threshold, F1, recall, AUROC."""
        rows = []
        for t_low, t_high in self._pairs(p_gate):
            final, routed = route(p_gate, p_heatmap, t_low, t_high)
            threshold = self._threshold(labels, final)
            point = at_threshold(labels, final, threshold)
            rows.append(
                {
                    "t_low": t_low,
                    "t_high": t_high,
                    "heatmap_call_rate": float(routed.mean()),
                    "auroc": image_auroc(labels, final),
                    **point,
                }
            )
        return pd.DataFrame(rows)

    def selection(self) -> str:
        """How the band is chosen: ``fixed``, ``budget`` (max_call_rate) or ``recall_loss``."""
        if self.params.thresholds is not None:
            return "fixed"
        return "budget" if self.params.max_call_rate is not None else "recall_loss"

    def choose(self, sweep: pd.DataFrame, heatmap_recall: float) -> pd.Series:
        """The configured pair; the best F1 within the call budget; or the fewest calls keeping
        recall within the margin."""
        if self.selection() == "fixed":
            return sweep.iloc[0]
        if self.selection() == "budget":
            budget = float(self.params.max_call_rate)
            ok = sweep[sweep["heatmap_call_rate"] <= budget + 1e-12]
            if ok.empty:
                raise ConfigError(
                    f"cascade max_call_rate {budget:g}: no band calls the heatmap method on so few "
                    "val images (fewer than one image); raise max_call_rate"
                )
            # Ties (a small val set is often separated by the gate alone) spend the budget: the
            # user accepted that cost, and the heatmap method is the stronger ranker on test.
            order = ok.assign(
                _f1=-ok["f1"].fillna(-1),
                _recall=-ok["recall"].fillna(-1),
                _auroc=-ok["auroc"].fillna(-1),
                _calls=-ok["heatmap_call_rate"],
            )
            order = order.sort_values(
                ["_f1", "_recall", "_auroc", "_calls", "t_low", "t_high"], kind="stable"
            )
            return order.iloc[0]
        if len(sweep) == 1:
            return sweep.iloc[0]
        floor = heatmap_recall - float(self.params.max_recall_loss)
        ok = sweep[sweep["recall"].fillna(-1) >= floor - 1e-12]
        if ok.empty:
            log.warning(
                "cascade: no (t_low, t_high) keeps val recall >= %.3f; taking the highest recall",
                floor,
            )
            ok = sweep[sweep["recall"] == sweep["recall"].max()]
        order = ok.assign(_f1=-ok["f1"].fillna(-1)).sort_values(
            ["heatmap_call_rate", "_f1", "t_low", "t_high"], kind="stable"
        )
        return order.iloc[0]

    def fit(self, val: MethodInputs, state_dir: Path) -> dict:
        labels = val.index["label"].to_numpy().astype(int)
        p_gate, raw = aligned(val, "gate"), aligned(val, "heatmap")
        spreads = {"gate": float(np.ptp(p_gate)), "heatmap": float(np.ptp(raw))}
        degenerate = min(spreads.values()) < DEGENERATE_SPREAD
        if degenerate:
            log.warning(
                "cascade: degenerate val scores (spread gate %.2e, heatmap %.2e < %.0e): the "
                "threshold sweep below ranks collapsed scores",
                spreads["gate"],
                spreads["heatmap"],
                DEGENERATE_SPREAD,
            )
        calibrator = Calibrator.fit(self.params.calibration, raw, labels)
        p_heatmap = calibrator(raw)
        heatmap_point = at_threshold(labels, p_heatmap, self._threshold(labels, p_heatmap))
        sweep = self.sweep(labels, p_gate, p_heatmap).assign(degenerate_scores=degenerate)
        chosen = self.choose(sweep, heatmap_point["recall"])
        sweep["chosen"] = (sweep["t_low"] == chosen["t_low"]) & (
            sweep["t_high"] == chosen["t_high"]
        )
        state_dir = Path(state_dir)
        save_text(state_dir / "sweep.csv", sweep.to_csv(index=False, float_format="%.6f"))
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "calibrator": calibrator.to_dict(),
            "t_low": float(chosen["t_low"]),
            "t_high": float(chosen["t_high"]),
            "threshold": float(chosen["threshold"]),
            "degenerate_scores": bool(degenerate),
            "val_spread": spreads,
            "band_selection": self.selection(),
            "max_call_rate": self.params.max_call_rate,
            "val_heatmap_recall": heatmap_point["recall"],
            "val_recall_loss": float(heatmap_point["recall"] - chosen["recall"]),
            "val_heatmap_ece_raw": ece(raw, labels) if unit_interval(raw) else None,
            "val_heatmap_ece": ece(p_heatmap, labels),
            "val": {k: float(chosen[k]) for k in ("heatmap_call_rate", "f1", "recall", "auroc")},
            "n_val": int(len(labels)),
        }
        save_json(state_dir / "state.json", state)
        log.info(
            "cascade: t_low %.3f t_high %.3f threshold %.4f, val call rate %.2f, F1 %.3f",
            state["t_low"],
            state["t_high"],
            state["threshold"],
            state["val"]["heatmap_call_rate"],
            state["val"]["f1"],
        )
        return state

    def score(self, state_dir: Path | None, inputs: MethodInputs, out_size: tuple[int, int]):
        state = json.loads((Path(state_dir) / "state.json").read_text())
        p_gate = aligned(inputs, "gate")
        raw = aligned(inputs, "heatmap")
        p_heatmap = Calibrator.from_dict(state["calibrator"])(raw)
        final, routed = route(p_gate, p_heatmap, state["t_low"], state["t_high"])
        columns = {"route": np.where(routed, "heatmap", "gate"), "p_gate": p_gate}
        if unit_interval(raw):  # ECE before calibration (ece_heatmap_raw), where it exists
            columns["p_heatmap_raw"] = raw
        columns["p_heatmap"] = p_heatmap
        return final, None, columns
