"""Crane's parameters and needs (torch-free: the DAG build reads them), and the defaults and
value lists its maths shares with them."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.backbones.registry import REGISTRY, resolve_block, resolve_layers
from iadbench.errors import ConfigError
from iadbench.methods.params import Needs, Params, param
from iadbench.methods.shared import BLOCK_LIST, LAST_N, class_name_param

ATTN_TERMS = ("qq", "kk", "vv")
IMAGE_SCORE_MODES = ("map_max", "cls", "pooled")
FINAL_ATTN = ("none", "rcs")
DATTN_INPUTS = ("block", "attention")
TEMPERATURE = 0.07  # METHODS §0: softmax over cosines / 0.07, i.e. logit scale 100
SIGMA = 4.0  # px, on the upsampled map (METHODS §0)
DATTN_BETA = 1.2
DATTN_GAMMA = 3.0
RCS_LAMBDA = 0.3  # ResCLIP's VOC21 config (tau, lambda)_rcs = (2.0, 0.3), METHODS §4.3
RCS_TAU = 2.0
# rcs.layers null: ResCLIP's intermediate blocks 6-9 (1-based) of a 12-block ViT-B/16, scaled
# to the encoder's depth (:func:`rcs_layers`).
RCS = {"lam": RCS_LAMBDA, "tau": RCS_TAU, "layers": None, "scale_by_terms": True}
# R and σ = exp(init_logstd) of the delivered system (METHODS §12.2); seed null: the entry's seed.
BAYES_SAMPLES = 8
BAYES_SIGMA = 0.001  # = exp(init_logstd), init_logstd = -6.907755
BAYES = {"samples": BAYES_SAMPLES, "sigma": None, "seed": None, "init_logstd": None}


def bayes_sigma(sigma: float | None = None, init_logstd: float | None = None) -> float:
    """σ of Crane's prompt noise from ``sigma`` or ``init_logstd`` (its log, the delivered
    system's name), not both; 0.001 when neither is given."""
    if sigma is not None and init_logstd is not None:
        raise ConfigError("bayes: give sigma or init_logstd, not both")
    if init_logstd is not None:
        value = math.exp(init_logstd)
    else:
        value = BAYES_SIGMA if sigma is None else float(sigma)
    if not 0.0 <= value < math.inf:
        raise ConfigError(f"bayes: sigma {value} must be a finite number >= 0")
    return value


def default_eattn_from(depth: int) -> int:
    """Crane's first refined block, 0-based: ``depth * 5 // 24``.

    Crane's code runs ``replace_with_EAttn(to_layer=20)``, ``for i in range(1, 20):
    resblocks[-i].attn = E-Attn``: the last 19 of ViT-L/14's 24 blocks, from block 5 on; other
    depths keep the same fraction (2 of 12).
    """
    return depth * 5 // 24


def rcs_layers(depth: int) -> list[int]:
    """RCS's ``A_c`` blocks by default, 0-based: ``range(depth * 5 // 12, depth * 9 // 12)``.

    ResCLIP averages the standard attention of blocks 6-9 (1-based; ``attn_map[i] for i in
    range(5, 9)``), hard-coded for ViT-B/16's 12 blocks; other depths keep the same fraction
    (12: 5-8, 24: 10-17).
    """
    return list(range(depth * 5 // 12, depth * 9 // 12))


def crane_view_name(options: Mapping[str, Any]) -> str:
    """``crane-<8 hex>``: the cached view of one set of resolved visual options."""
    blob = json.dumps(options, sort_keys=True, separators=(",", ":"))
    return f"crane-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def _merged(name: str, given: Any, defaults: dict) -> dict:
    """A nested option mapping with its missing keys defaulted and unknown keys refused."""
    if not isinstance(given, Mapping):
        raise ConfigError(f"crane {name} must be a mapping, got {given!r}")
    if unknown := sorted(set(given) - set(defaults)):
        raise ConfigError(f"crane {name}: unknown key(s) {unknown} (known: {', '.join(defaults)})")
    return {**copy.deepcopy(defaults), **given}


@dataclass(frozen=True)
class CraneParams(Params):
    """The training-free Crane + Bayes-prompt + ResCLIP system (METHODS §12, §4.1, §4.3).

    Visual options (``attn_type``, ``eattn_from``, ``taps``, ``dino`` with ``beta``/``gamma``,
    ``final_attn``/``rcs``) shape the cached refined-path tokens (:meth:`visual_view`); the
    others only score them: the prompt set and class name, the map and image score, ``bayes``
    sampling (``samples: 0`` turns it off; ``sigma`` or ``init_logstd``, default σ = 0.001;
    ``seed`` null = the entry's ``seed``) and ``fusion_alpha``, the weight of the Bayes output
    in ``(1 − α)·deterministic + α·Bayes``. ``eattn_from`` null is block ``depth * 5 // 24``
    (Crane's code refines the last 19 of 24 blocks: 0-based 5 of 24, 2 of 12); ``taps`` null the
    backbone's registry blocks; ``rcs.layers`` null ResCLIP's blocks 5-8 of 12 scaled to the
    depth (:func:`rcs_layers`).
    """

    implementation: ClassVar[str] = "iadbench.methods.crane.method:Crane"
    entry_keys: ClassVar[dict[str, str]] = {
        **Params.entry_keys,
        "backbone": "a CLIP backbone entry",
        "seed": "the Bayes noise draw when bayes.seed is null",
    }
    required_keys: ClassVar[tuple[str, ...]] = ("backbone",)

    prompts: str = param(
        "april_gan",
        "the fixed hand-made ensemble: april_gan (7/5 states x 35 templates, METHODS §2.2), "
        "winclip (7/4 x 22), or a prompt_sets key; each sentence embedding is normalised before "
        "averaging",
    )
    class_name: str = class_name_param()
    attn_type: str = param(
        "qq+kk+vv",
        "E-Attn terms, '+'-joined: W_E = sum of softmax(x xT / sqrt(d_h)) for x in the terms "
        "(qq+kk+vv, or any one or two of qq, kk, vv)",
    )
    eattn_from: int | None = param(
        None,
        "first block (0-based, negative from the end) of the refined path (E-Attn, no FFN); "
        "null = depth * 5 // 24, Crane's code (replace_with_EAttn(to_layer=20) refines the last 19 "
        "of 24 blocks: block 5 of 24, 2 of 12); >= depth = no refined block",
    )
    taps: list | str | None = param(
        None,
        "blocks whose projected refined tokens are scored (0-based, negative from the end, or "
        '"lastN"); null = the backbone\'s registry blocks (5/11/17/23 of ViT-L)',
        schema={"oneOf": [{"type": "null"}, BLOCK_LIST, LAST_N]},
    )
    dino: str | None = param(
        None,
        "null = no D-Attn; else a backbones entry of a DINOv2 model (dinov2_vitb14_reg4, "
        "dinov2_vitb14) whose last-block patch affinities guide an extra attention at every tap "
        "(Crane+)",
    )
    beta: float = param(DATTN_BETA, "D-Attn: S' = gamma (S - beta mean(S)); with dino only")
    gamma: float = param(
        DATTN_GAMMA, "D-Attn sharpness (see beta); with dino only", exclusiveMinimum=0
    )
    dattn_input: str = param(
        "block",
        "D-Attn's V from ln_1 of the tap block's input (block, METHODS §4.1) or of the original "
        "stream after that block's attention residual, before its FFN (attention: what Crane's "
        "code reads at taps after eattn_from, whose blocks update the stream in place); with "
        "dino only",
        enum=list(DATTN_INPUTS),
    )
    image_score_mode: str = param(
        "map_max",
        "max of the final map; two-class softmax of the original path's CLS; or of Crane's "
        "score-pooled embedding",
        enum=list(IMAGE_SCORE_MODES),
    )
    temperature: float = param(
        TEMPERATURE,
        "two-class softmax temperature (tau) of maps and image scores",
        exclusiveMinimum=0,
    )
    sigma: float = param(SIGMA, "Gaussian blur (px) of the upsampled map; 0 = none", minimum=0)
    soft_mean: bool = param(
        True,
        "map = mean over taps of each tap's softmax (true) or the softmax of the taps' mean "
        "logits (false)",
    )
    upsample_logits: bool = param(
        False,
        "with soft_mean false: upsample the taps' mean two-class logits to the image size before "
        "the softmax, as Crane's test.py does (false: upsample the probability map from the patch "
        "grid); no effect with soft_mean true",
    )
    final_attn: str = param(
        "none",
        "rcs: the last block's refined attention becomes ResCLIP's RCS, "
        "tau ((1 - lam) A_s + lam n A_c), A_s the E-Attn sum of n terms (rows sum to n), so "
        "A_c's share of each row is lam, as in ResCLIP's row-stochastic mix",
        enum=list(FINAL_ATTN),
    )
    rcs: dict = param(
        RCS,
        "RCS options (final_attn rcs only); ResCLIP's VOC21 values",
        additionalProperties=False,
        properties={
            "lam": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "default": RCS_LAMBDA,
                "description": "A_c's share of each row of the mix (A_c: the mean standard "
                "attention of layers, weighted lam n against the n-term E-Attn sum)",
            },
            "tau": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": RCS_TAU,
                "description": "scale of the mixed attention (1 = METHODS §12's plain mix)",
            },
            "layers": {
                "oneOf": [{"type": "null"}, BLOCK_LIST],
                "default": None,
                "description": "blocks (0-based, negative from the end) whose standard attention "
                "is averaged into A_c; null = ResCLIP's 6-9 of 12 (1-based) scaled to the depth, "
                "range(depth*5//12, depth*9//12): 5-8 of 12, 10-17 of 24",
            },
            "scale_by_terms": {
                "type": "boolean",
                "default": True,
                "description": "weight A_c by the n E-Attn terms so its share of each row is lam "
                "(true), or mix it unweighted, tau ((1 - lam) A_s + lam A_c), as ResCLIP's code "
                "writes it for its two-term SCLIP attention (false); the same for one term",
            },
        },
    )
    bayes: dict = param(
        BAYES,
        "fixed-prompt Monte Carlo sampling: R copies of every prompt's token embeddings with "
        "N(0, sigma^2) noise before the text transformer",
        additionalProperties=False,
        properties={
            "samples": {
                "type": "integer",
                "minimum": 0,
                "default": BAYES_SAMPLES,
                "description": "R (0 = no Bayes path; then fusion_alpha must be 0)",
            },
            "sigma": {
                "type": ["number", "null"],
                "minimum": 0,
                "default": None,
                "description": "noise std; null = exp(init_logstd) when that is given, else "
                "0.001; 0 = the deterministic path with a std of exactly zero",
            },
            "seed": {
                "type": ["integer", "null"],
                "minimum": 0,
                "default": None,
                "description": "seed of the noise; null = the method's seed",
            },
            "init_logstd": {
                "type": ["number", "null"],
                "default": None,
                "description": "log of sigma (the delivered system's option; -6.907755 = 0.001)",
            },
        },
    )
    fusion_alpha: float = param(
        0.5,
        "maps and image scores = (1 - alpha) deterministic + alpha Bayes (0: the deterministic "
        "path exactly, 1: the Bayes path exactly)",
        minimum=0,
        maximum=1,
    )

    def __post_init__(self) -> None:
        # Partial nested mappings (written without the schema's defaults) are completed here.
        object.__setattr__(self, "rcs", _merged("rcs", self.rcs, RCS))
        object.__setattr__(self, "bayes", _merged("bayes", self.bayes, BAYES))

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> CraneParams:
        params = super().from_entry(entry)
        if params.bayes["seed"] is not None:
            return params
        return dataclasses.replace(
            params, bayes={**params.bayes, "seed": int(entry.get("seed", 0))}
        )

    @property
    def bayes_sigma(self) -> float:
        """σ of the prompt noise (:func:`bayes_sigma`)."""
        return bayes_sigma(self.bayes["sigma"], self.bayes["init_logstd"])

    def needs(self) -> Needs:
        samples, sigma = int(self.bayes["samples"]), self.bayes_sigma
        noisy = (samples, sigma, self.bayes["seed"]) if samples > 0 and sigma > 0 else None
        return Needs(
            frozenset({"visual", "text"}),
            "none",
            prompts=self.prompts,
            noisy_text=noisy,
            uncertainty=samples > 0,
        )

    def check(self) -> None:
        terms = str(self.attn_type).split("+")
        if set(terms) - set(ATTN_TERMS) or len(set(terms)) != len(terms):
            raise ConfigError(
                f"crane attn_type {self.attn_type!r}: '+'-joined distinct terms out of "
                f"{', '.join(ATTN_TERMS)}"
            )
        samples, sigma = int(self.bayes["samples"]), self.bayes_sigma
        if samples == 0 and float(self.fusion_alpha) > 0:
            raise ConfigError(
                f"crane fusion_alpha {self.fusion_alpha} mixes in the Bayes path, which "
                "bayes.samples: 0 turns off; set fusion_alpha: 0 or samples >= 2"
            )
        if samples == 1 and sigma > 0:
            raise ConfigError("crane bayes: one sample has no std; use samples >= 2 (or 0: off)")

    def visual_view(self, model: str, backbones: Mapping[str, dict]) -> tuple[str, dict]:
        depth = REGISTRY[model].n_taps
        start = default_eattn_from(depth) if self.eattn_from is None else self.eattn_from
        options: dict[str, Any] = {
            "attn_type": "+".join(t for t in ATTN_TERMS if t in self.attn_type.split("+")),
            "eattn_from": resolve_block(start, depth, "crane eattn_from", beyond=True),
            "taps": list(resolve_layers(model, self.taps)),
            "dino": None,
            "rcs": None,
        }
        if self.final_attn == "rcs":
            if options["eattn_from"] >= depth:
                raise ConfigError(
                    f"crane final_attn rcs replaces the last refined block, but eattn_from "
                    f"{self.eattn_from} starts none of the {depth} blocks"
                )
            given = rcs_layers(depth) if self.rcs["layers"] is None else self.rcs["layers"]
            layers = sorted(resolve_block(i, depth, "crane rcs layer") for i in given)
            if not layers or len(set(layers)) != len(layers):
                raise ConfigError(
                    f"crane rcs layers {self.rcs['layers']} must name distinct blocks"
                )
            options["rcs"] = {
                "lam": float(self.rcs["lam"]), "tau": float(self.rcs["tau"]), "layers": layers,
                "scale_by_terms": bool(self.rcs["scale_by_terms"]),
            }  # fmt: skip
        if self.dino is not None:
            entry = backbones.get(self.dino)
            if entry is None:
                raise ConfigError(
                    f"crane dino {self.dino!r} is not defined under backbones: "
                    f"(defined: {', '.join(backbones)})"
                )
            spec = REGISTRY.get(entry["model"])
            if spec is None or spec.family != "vit" or "dinov2" not in spec.library_name:
                raise ConfigError(
                    f"crane dino {self.dino!r} is {entry['model']}, not a DINOv2 model "
                    f"(dinov2_vitb14, dinov2_vitb14_reg4)"
                )
            options["dino"] = {
                "model": entry["model"],
                "weights": str(entry.get("weights", "pretrained")),
                "seed": int(entry.get("seed", 0)),
                "beta": float(self.beta),
                "gamma": float(self.gamma),
                "input": str(self.dattn_input),
            }
        return crane_view_name(options), options

    def describe(self, state: dict) -> dict[str, Any]:
        # The resolved taps, eattn_from and DINO weights come from the score table.
        rcs, samples = self.final_attn == "rcs", int(self.bayes["samples"])
        return {
            "prompts": self.prompts,
            "attn_type": self.attn_type,
            "dino": self.dino,
            "dattn_beta": float(self.beta) if self.dino else None,
            "dattn_gamma": float(self.gamma) if self.dino else None,
            "dattn_input": self.dattn_input if self.dino else None,
            "final_attn": self.final_attn,
            "rcs_lam": float(self.rcs["lam"]) if rcs else None,
            "rcs_tau": float(self.rcs["tau"]) if rcs else None,
            "rcs_scale_by_terms": bool(self.rcs["scale_by_terms"]) if rcs else None,
            "rcs_layers": (
                ("auto" if self.rcs["layers"] is None else ",".join(map(str, self.rcs["layers"])))
                if rcs
                else None
            ),  # the resolved ones come from the score table
            "image_score_mode": self.image_score_mode,
            "temperature": float(self.temperature),
            "map_sigma": float(self.sigma),
            "soft_mean": bool(self.soft_mean),
            "upsample_logits": bool(self.upsample_logits),
            "bayes_samples": samples,
            "bayes_sigma": self.bayes_sigma if samples else None,
            "bayes_seed": self.bayes["seed"] if samples else None,
            "fusion_alpha": float(self.fusion_alpha),
        }
