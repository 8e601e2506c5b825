"""Method kinds: their parameters, what they need, and where their code lives. Imports no torch.

The rules read this module while Snakemake builds the DAG (every Slurm job re-parses the
Snakefile), so it must stay light: each kind is a frozen parameter dataclass (the one source of
its defaults; the schema's per-kind defaults are checked against it by a test) with a
:meth:`Params.needs` declaration and the ``"module:Class"`` string of its implementation, which
only jobs import (:func:`iadbench.methods.build_method`).

A method entry's ``kind`` is a registered name (:data:`KINDS`) or, for a method that lives
outside this package, the ``"module:Class"`` import string of its parameter dataclass.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.backbones.registry import REGISTRY, resolve_block, resolve_layers
from iadbench.errors import ConfigError

INPUTS = frozenset(
    {"features", "visual", "windows", "images", "text", "scores", "audio", "video", "sensor"}
)
# Inputs computed by the method's ``backbone`` (the feature store, CLIP's cached outputs).
ENCODED = frozenset({"features", "visual", "windows", "text"})
TRAINING = ("none", "per_category", "train_set")
# Keys every method entry may carry besides its kind's parameters.
COMMON_KEYS = ("kind", "backbone", "datasets", "seed", "grid", "train_on", "uses")


@dataclass(frozen=True)
class Needs:
    """What a method consumes and how it learns; the rules build exactly this, nothing more.

    ``inputs``: cached ``features`` (needs a ``backbone``); a CLIP ``backbone``'s cached ``visual``
    outputs (the CLS embedding and, at ``blocks``, patch tokens on ``token_path``), ``windows``
    (WinCLIP's window embeddings for each size in ``windows``) and ``text`` (sentence embeddings of
    the ``prompts`` set for each category's class name); ``images`` (read by the method from the
    manifest), ``scores`` (other methods' outputs, by the roles in ``uses``), or other modalities.
    ``training``: ``none`` (zero-shot), ``per_category`` (one-class fit on each category's
    ``fit_on`` split) or ``train_set`` (trained once on the config's named train set ``train_on``,
    scored on any dataset). ``fit_on``: ``train`` for one-class fits, ``val`` for methods whose
    whole "fit" is calibration on validation scores (the dataset must have a ``val_split``).
    ``maps``: whether pixel maps are produced (else pixel metrics are n/a). ``probabilities``: image
    scores are calibrated probabilities (ECE is reported). ``noisy_text``: ``(R, σ, seed)`` of
    the cached noisy text prototypes the method reads beside ``text`` (Crane's Bayes path).
    ``uncertainty``: score tables carry per-image ``score_std`` and ``map_std_mean`` columns,
    which the variance analysis reads. ``embeddings``: ``(role, encoder)`` pairs of the cached
    per-modality embeddings a multimodal kind reads (``encoder`` a key of the config's
    ``encoders``; the role is the method's name for it, e.g. ``video``, ``audio``, ``photo``).
    """

    inputs: frozenset[str]
    training: str
    maps: bool = True
    uses: tuple[str, ...] = ()
    fit_on: str = "train"
    probabilities: bool = False
    token_path: str = "projected"
    blocks: tuple[int, ...] = ()
    windows: tuple[int, ...] = ()
    prompts: str | None = None
    noisy_text: tuple[int, float, int] | None = None
    uncertainty: bool = False
    embeddings: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if unknown := set(self.inputs) - INPUTS:
            raise ConfigError(f"unknown method inputs {sorted(unknown)} (known: {sorted(INPUTS)})")
        if self.training not in TRAINING:
            raise ConfigError(f"unknown training {self.training!r} (known: {', '.join(TRAINING)})")
        if self.fit_on not in ("train", "val"):
            raise ConfigError(f"fit_on must be train or val, got {self.fit_on!r}")


@dataclass(frozen=True)
class Params:
    """Base of every kind's parameter dataclass; subclasses add fields with defaults."""

    implementation: ClassVar[str] = ""
    # Whether the opt-in latency step times this kind (its Method implements ``latency``).
    timed: ClassVar[bool] = False

    def needs(self) -> Needs:
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`ConfigError` for values the schema cannot rule out."""

    def splits_read(self) -> frozenset[str]:
        """Splits a fit reads besides ``fit_on`` (checked against each dataset at start-up)."""
        return frozenset()

    def describe(self, state: dict) -> dict[str, Any]:
        """Provenance columns a result row gets from this method (``state``: its state.json)."""
        return {}

    def visual_view(self, model: str, backbones: Mapping[str, dict]) -> tuple[str, dict] | None:
        """A visual view the kind computes itself: ``(name, options)`` with the options resolved
        against its CLIP ``model`` and the config's ``backbones``; None for the plain views
        (token path + blocks). Raises :class:`ConfigError` for options that do not fit them.
        """
        return None

    @classmethod
    def from_entry(cls, entry: dict) -> Params:
        """The parameters of a method entry: common keys dropped, unknown keys refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(entry) - names - set(COMMON_KEYS))
        if extra:
            raise ConfigError(
                f"unknown key(s) {extra} for kind {entry.get('kind')!r} "
                f"(its parameters: {', '.join(sorted(names)) or 'none'})"
            )
        params = cls(**{k: v for k, v in entry.items() if k in names})
        params.check()
        return params

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FUSION_MODES = ("concat", "single", "adaptive", "weighted")
BANKS = ("greedy", "full", "random", "pca", "kmeans")
KNN_BACKENDS = ("auto", "faiss", "torch")


def check_fusion(fusion: str | dict) -> None:
    """Reject a malformed ``fusion:`` without importing the feature code."""
    from iadbench.features.fusion import Fusion  # numpy only

    Fusion.from_config(fusion)


def describe_features(state: dict) -> dict[str, Any]:
    """Columns of methods that fit on cached backbone features (see ``Method.save_state``)."""
    features = state.get("features") or {}
    return {
        "backbone_model": features.get("model"),
        "weights": features.get("weights"),
        "feature_dim": state.get("feature_dim"),
        "fusion": (state.get("fusion") or {}).get("mode"),
    }


@dataclass(frozen=True)
class PatchCoreParams(Params):
    """PatchCore (METHODS §1.1): memory bank of training patches, nearest-neighbour distances."""

    implementation: ClassVar[str] = "iadbench.methods.patchcore:PatchCore"
    timed: ClassVar[bool] = True

    coreset: float = 0.1
    projection_dim: int = 128
    n_starts: int = 10
    num_nn: int = 1
    reweight_neighbors: int = 9
    sigma: float = 4.0
    upsample: str = "bilinear"
    image_score: str = "map_max"
    fusion: str | dict = "decay"
    bank: str = "greedy"
    pca_dim: int = 128
    k: int = 1000
    kmeans: str = "faiss"
    knn_backend: str = "auto"

    def needs(self) -> Needs:
        return Needs(frozenset({"features"}), "per_category")

    def check(self) -> None:
        if self.bank not in BANKS:
            raise ConfigError(f"unknown patchcore bank {self.bank!r} (known: {', '.join(BANKS)})")
        if not 0.0 < float(self.coreset) <= 1.0:
            raise ConfigError(f"patchcore coreset fraction must be in (0, 1], got {self.coreset}")
        for key in ("pca_dim", "k", "projection_dim", "n_starts", "num_nn"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"patchcore {key} must be >= 1, got {getattr(self, key)}")
        if self.knn_backend not in KNN_BACKENDS:
            raise ConfigError(
                f"unknown knn_backend {self.knn_backend!r} (known: {', '.join(KNN_BACKENDS)})"
            )
        if self.kmeans not in ("faiss", "sklearn"):
            raise ConfigError(f"patchcore kmeans must be faiss or sklearn, not {self.kmeans!r}")
        if self.upsample not in ("bilinear", "nearest"):
            raise ConfigError(
                f"patchcore upsample must be bilinear or nearest, not {self.upsample!r}"
            )
        if self.image_score not in ("map_max", "patch_max"):
            raise ConfigError(
                f"patchcore image_score must be map_max or patch_max, not {self.image_score!r}"
            )
        check_fusion(self.fusion)

    def describe(self, state: dict) -> dict[str, Any]:
        bank = state.get("bank") or {}
        return {
            **describe_features(state),
            "bank": bank.get("kind"),
            "bank_size": state.get("bank_size"),
            **({"kmeans": bank["clustering"]} if bank.get("clustering") else {}),
        }


@dataclass(frozen=True)
class PadimParams(Params):
    """PaDiM (METHODS §1.2): one Gaussian per patch position on a random channel subset."""

    implementation: ClassVar[str] = "iadbench.methods.padim:Padim"
    timed: ClassVar[bool] = True

    n_features: int = 100
    epsilon: float = 0.01
    sigma: float = 4.0
    fusion: str | dict = "concat"

    def needs(self) -> Needs:
        return Needs(frozenset({"features"}), "per_category")

    def check(self) -> None:
        if int(self.n_features) < 1:
            raise ConfigError(f"padim n_features must be >= 1, got {self.n_features}")
        if float(self.epsilon) <= 0:
            raise ConfigError(f"padim epsilon must be > 0, got {self.epsilon}")
        check_fusion(self.fusion)

    def describe(self, state: dict) -> dict[str, Any]:
        return describe_features(state)


CLASSIFIER_MODELS = ("efficientnet_lite0", "efficientnet_b0", "mobilenetv3_small_100")


@dataclass(frozen=True)
class ClassifierParams(Params):
    """A timm image classifier used as a cheap gate (METHODS §11), trained per category.

    Anomalies come from ``synthetic`` CutPaste/Scar copies of the normal training images or from
    the ``labelled`` split ``train_labelled``; the best epoch is chosen on ``val`` when the
    dataset has one, and the logits are temperature-scaled on ``val`` (``calibrate``).
    """

    implementation: ClassVar[str] = "iadbench.methods.classifier:Classifier"
    timed: ClassVar[bool] = True

    model: str = "efficientnet_lite0"
    weights: str = "pretrained"
    anomalies: str = "synthetic"
    synthetic: str = "mixed"
    synthetic_per_image: int = 1
    epochs: int = 10
    batch_size: int = 16
    lr: float = 0.001
    weight_decay: float = 0.0001
    optimizer: str = "adamw"
    schedule: str = "cosine"
    class_weights: bool = True
    calibrate: bool = True

    def needs(self) -> Needs:
        return Needs(frozenset({"images"}), "per_category", maps=False, probabilities=True)

    def check(self) -> None:
        if self.model not in CLASSIFIER_MODELS:
            raise ConfigError(
                f"classifier model {self.model!r} is not one of {', '.join(CLASSIFIER_MODELS)}"
            )
        if self.anomalies not in ("synthetic", "labelled"):
            raise ConfigError(
                f"classifier anomalies must be synthetic or labelled, got {self.anomalies!r}"
            )
        if self.synthetic not in ("cutpaste", "scar", "mixed"):
            raise ConfigError(
                f"classifier synthetic must be cutpaste, scar or mixed, got {self.synthetic!r}"
            )
        if int(self.synthetic_per_image) < 1:
            raise ConfigError("classifier synthetic_per_image must be >= 1")

    def splits_read(self) -> frozenset[str]:
        return frozenset({"train_labelled"}) if self.anomalies == "labelled" else frozenset()

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            "backbone_model": self.model,
            "weights": state.get("weights"),
            "anomalies": self.anomalies,
            "temperature": state.get("temperature"),
            "selection": state.get("selection"),
            "best_epoch": state.get("best_epoch"),
        }


CALIBRATIONS = ("platt", "isotonic")
OPERATING = ("max_f1", "recall")


@dataclass(frozen=True)
class CascadeParams(Params):
    """Gate -> heatmap cascade (METHODS §11): calibrated on ``val``, routed by two thresholds.

    ``thresholds: [t_low, t_high]`` fixes the uncertain band; without it the pair with the
    fewest heatmap calls whose ``val`` recall is at least the heatmap method's minus
    ``max_recall_loss`` is chosen from ``grid_low`` x ``grid_high``. The operating threshold is
    chosen on ``val`` by ``operating`` (max F1, or the highest threshold reaching
    ``target_recall``).
    """

    implementation: ClassVar[str] = "iadbench.methods.cascade:Cascade"

    calibration: str = "platt"
    thresholds: list | None = None
    grid_low: list = dataclasses.field(
        default_factory=lambda: [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4]
    )
    grid_high: list = dataclasses.field(
        default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
    )
    max_recall_loss: float = 0.02
    operating: str = "max_f1"
    target_recall: float = 0.95

    def needs(self) -> Needs:
        return Needs(
            frozenset({"scores"}),
            "per_category",
            maps=False,
            uses=("gate", "heatmap"),
            fit_on="val",
            probabilities=True,
        )

    def check(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(f"cascade calibration must be one of {', '.join(CALIBRATIONS)}")
        if self.operating not in OPERATING:
            raise ConfigError(f"cascade operating must be one of {', '.join(OPERATING)}")
        if self.thresholds is not None:
            lo, hi = (list(self.thresholds) + [None, None])[:2]
            if len(self.thresholds) != 2 or not 0.0 <= lo < hi <= 1.0:
                raise ConfigError(
                    f"cascade thresholds need [t_low, t_high] with 0 <= t_low < t_high <= 1, "
                    f"got {self.thresholds}"
                )
        elif not any(lo < hi for lo in self.grid_low for hi in self.grid_high):
            raise ConfigError("cascade grid_low x grid_high holds no pair with t_low < t_high")

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            "t_low": state.get("t_low"),
            "t_high": state.get("t_high"),
            "calibration": self.calibration,
            "degenerate_scores": state.get("degenerate_scores"),
        }


TOKEN_PATHS = ("projected", "ln_post", "raw")


@dataclass(frozen=True)
class WinClipParams(Params):
    """WinCLIP (METHODS §2.1): zero-shot window scoring; ``k_shot`` > 0 adds WinCLIP+.

    ``prompts`` names a built-in ensemble (``winclip``, ``april_gan``) or a ``prompt_sets:``
    entry; ``class_name: auto`` takes the dataset's ``class_names`` mapping (default: the
    category with ``_`` as spaces), ``object`` the literal word. Few-shot references are drawn
    from ``train`` normal images with ``seed``; their patch tokens come from ``shot_block`` on
    ``shot_token_path`` (anomalib: the last block after ln_post).
    """

    implementation: ClassVar[str] = "iadbench.methods.winclip:WinClip"

    prompts: str = "winclip"
    class_name: str = "auto"
    windows: list = dataclasses.field(default_factory=lambda: [2, 3])
    temperature: float = 0.07
    include_image: bool = True
    normalize_each: bool = False
    k_shot: int = 0
    shot_block: int = -1
    shot_token_path: str = "ln_post"

    def needs(self) -> Needs:
        few = int(self.k_shot) > 0
        return Needs(
            frozenset({"visual", "windows", "text"}),
            "per_category" if few else "none",
            token_path=self.shot_token_path,
            blocks=(int(self.shot_block),) if few else (),
            windows=tuple(int(w) for w in self.windows),
            prompts=self.prompts,
        )

    def check(self) -> None:
        if self.class_name not in ("auto", "object"):
            raise ConfigError(f"winclip class_name must be auto or object, not {self.class_name!r}")
        if not self.windows or any(int(w) < 1 for w in self.windows):
            raise ConfigError(f"winclip windows must be window sides >= 1, got {self.windows}")
        if len(set(self.windows)) != len(self.windows):
            raise ConfigError(f"winclip windows {self.windows} repeat a size")
        if float(self.temperature) <= 0:
            raise ConfigError(f"winclip temperature must be > 0, got {self.temperature}")
        if int(self.k_shot) < 0:
            raise ConfigError(f"winclip k_shot must be >= 0, got {self.k_shot}")
        if self.shot_token_path not in TOKEN_PATHS:
            raise ConfigError(
                f"winclip shot_token_path must be one of {', '.join(TOKEN_PATHS)}, "
                f"not {self.shot_token_path!r}"
            )

    def describe(self, state: dict) -> dict[str, Any]:
        # The drawn references differ by seed and category; they stay in state.json.
        return {"prompts": self.prompts, "k_shot": int(self.k_shot)}


CRANE_ATTN_TERMS = ("qq", "kk", "vv")
CRANE_SCORE_MODES = ("map_max", "cls", "pooled")
CRANE_FINAL_ATTN = ("none", "rcs")
CRANE_RCS = {"lam": 0.3, "tau": 2.0, "layers": [5, 6, 7, 8]}  # ResCLIP's VOC21 config, §4.3
# R and σ = exp(init_logstd) of the delivered system (METHODS §12.2); seed null: the entry's seed.
CRANE_BAYES = {"samples": 8, "sigma": None, "seed": None, "init_logstd": None}
BAYES_SIGMA = 0.001  # = exp(init_logstd), init_logstd = -6.907755


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
    in ``(1 − α)·deterministic + α·Bayes``. ``eattn_from`` null is block ``depth // 4`` (6 of
    24); ``taps`` null the backbone's registry blocks.
    """

    implementation: ClassVar[str] = "iadbench.methods.crane:Crane"

    prompts: str = "april_gan"
    class_name: str = "auto"
    attn_type: str = "qq+kk+vv"
    eattn_from: int | None = None
    taps: list | str | None = None
    dino: str | None = None
    beta: float = 1.2
    gamma: float = 3.0
    image_score_mode: str = "map_max"
    temperature: float = 0.07
    sigma: float = 4.0
    soft_mean: bool = True
    final_attn: str = "none"
    rcs: dict = dataclasses.field(default_factory=lambda: dict(CRANE_RCS))
    bayes: dict = dataclasses.field(default_factory=lambda: dict(CRANE_BAYES))
    fusion_alpha: float = 0.5

    def __post_init__(self) -> None:
        # Partial nested mappings (written without the schema's defaults) are completed here.
        object.__setattr__(self, "rcs", _merged("rcs", self.rcs, CRANE_RCS))
        object.__setattr__(self, "bayes", _merged("bayes", self.bayes, CRANE_BAYES))

    @classmethod
    def from_entry(cls, entry: dict) -> CraneParams:
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
        if self.class_name not in ("auto", "object"):
            raise ConfigError(f"crane class_name must be auto or object, not {self.class_name!r}")
        terms = str(self.attn_type).split("+")
        if set(terms) - set(CRANE_ATTN_TERMS) or len(set(terms)) != len(terms):
            raise ConfigError(
                f"crane attn_type {self.attn_type!r}: '+'-joined distinct terms out of "
                f"{', '.join(CRANE_ATTN_TERMS)}"
            )
        if self.image_score_mode not in CRANE_SCORE_MODES:
            raise ConfigError(
                f"crane image_score_mode must be one of {', '.join(CRANE_SCORE_MODES)}, "
                f"not {self.image_score_mode!r}"
            )
        if self.final_attn not in CRANE_FINAL_ATTN:
            raise ConfigError(f"crane final_attn must be none or rcs, not {self.final_attn!r}")
        for key in ("temperature", "gamma"):
            if not float(getattr(self, key)) > 0:
                raise ConfigError(f"crane {key} must be > 0, got {getattr(self, key)}")
        if float(self.sigma) < 0:
            raise ConfigError(
                f"crane sigma (the map's Gaussian blur) must be >= 0, got {self.sigma}"
            )
        if not 0.0 <= float(self.rcs["lam"]) <= 1.0 or not float(self.rcs["tau"]) > 0:
            raise ConfigError(f"crane rcs needs lam in [0, 1] and tau > 0, got {self.rcs}")
        if not 0.0 <= float(self.fusion_alpha) <= 1.0:
            raise ConfigError(f"crane fusion_alpha must be in [0, 1], got {self.fusion_alpha}")
        samples, sigma = int(self.bayes["samples"]), self.bayes_sigma
        if samples < 0:
            raise ConfigError(f"crane bayes samples must be >= 0, got {samples}")
        if samples == 0 and float(self.fusion_alpha) > 0:
            raise ConfigError(
                f"crane fusion_alpha {self.fusion_alpha} mixes in the Bayes path, which "
                "bayes.samples: 0 turns off; set fusion_alpha: 0 or samples >= 2"
            )
        if samples == 1 and sigma > 0:
            raise ConfigError("crane bayes: one sample has no std; use samples >= 2 (or 0: off)")

    def visual_view(self, model: str, backbones: Mapping[str, dict]) -> tuple[str, dict]:
        depth = REGISTRY[model].n_taps
        start = depth // 4 if self.eattn_from is None else self.eattn_from
        options: dict[str, Any] = {
            "attn_type": "+".join(t for t in CRANE_ATTN_TERMS if t in self.attn_type.split("+")),
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
            layers = sorted(resolve_block(i, depth, "crane rcs layer") for i in self.rcs["layers"])
            if not layers or len(set(layers)) != len(layers):
                raise ConfigError(
                    f"crane rcs layers {self.rcs['layers']} must name distinct blocks"
                )
            options["rcs"] = {
                "lam": float(self.rcs["lam"]), "tau": float(self.rcs["tau"]), "layers": layers
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
            "final_attn": self.final_attn,
            "rcs_lam": float(self.rcs["lam"]) if rcs else None,
            "rcs_tau": float(self.rcs["tau"]) if rcs else None,
            "rcs_layers": ",".join(str(i) for i in self.rcs["layers"]) if rcs else None,
            "image_score_mode": self.image_score_mode,
            "temperature": float(self.temperature),
            "map_sigma": float(self.sigma),
            "soft_mean": bool(self.soft_mean),
            "bayes_samples": samples,
            "bayes_sigma": self.bayes_sigma if samples else None,
            "bayes_seed": self.bayes["seed"] if samples else None,
            "fusion_alpha": float(self.fusion_alpha),
        }


ADAPTER_MAPS = ("prob", "logit_margin")
LFS_STATS = ("signed", "abs", "power")  # as iadbench.clip.adapters (torch) spells them


def _check_taps(kind: str, taps: Any) -> None:
    if taps is None or (isinstance(taps, str) and taps.startswith("last")):
        return
    if not isinstance(taps, list) or not taps or len(set(taps)) != len(taps):
        raise ConfigError(f"{kind} taps must be distinct block indices or 'lastN', got {taps!r}")
    if any(isinstance(t, bool) or not isinstance(t, int) for t in taps):
        raise ConfigError(f"{kind} taps must be integers, got {taps!r}")


@dataclass(frozen=True)
class LearnedClipParams(Params):
    """What the trained CLIP kinds share: prompts, taps, the loss weights and the training loop.

    Trained once on a ``train_sets:`` entry (``train_on``): images, masks and the text
    prototypes of each training category's class name; scored on any dataset with its own.
    ``frozen_cache``: start every epoch of every seed from the frozen residual stream cached
    once per (train set, backbone, blocks) instead of running CLIP's frozen blocks again;
    ``auto`` = on unless an augmentation changes the images (then the stream differs each time).
    """

    kind_name: ClassVar[str] = ""

    prompts: str = "april_gan"
    class_name: str = "auto"
    taps: list | str | None = None
    temperature: float | str = 0.07
    smooth_sigma: float = 0.0
    focal_weight: float = 1.0
    dice_weight: float = 1.0
    epochs: int = 1
    batch_size: int = 8
    lr: float = 0.001
    betas: list = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    amp: bool = True
    frozen_cache: bool | str = "auto"

    def needs(self) -> Needs:
        return Needs(frozenset({"images", "text"}), "train_set", prompts=self.prompts)

    def frozen_blocks(self, model: str) -> tuple[int, ...]:
        """The blocks after which the kind's frozen residual stream is read (none: no cache)."""
        raise NotImplementedError

    def augmented(self) -> bool:
        """Whether training changes the images (a cached frozen stream would then be wrong)."""
        return False

    def cache_view(self, model: str) -> str | None:
        """The cached frozen view (``raw-b<k>-...``) training starts from on CLIP ``model``, or
        None when it runs CLIP's frozen blocks itself."""
        if self.frozen_cache is False or self.augmented():
            return None
        blocks = self.frozen_blocks(model)
        if not blocks:
            if self.frozen_cache is True:
                raise ConfigError(
                    f"{self.kind_name} frozen_cache: no frozen block precedes the first trained "
                    "one, so there is nothing to cache; set frozen_cache: auto or false"
                )
            return None
        return "-".join(["raw", *(f"b{b}" for b in blocks)])

    def check(self) -> None:
        kind = self.kind_name
        if self.class_name not in ("auto", "object"):
            raise ConfigError(f"{kind} class_name must be auto or object, not {self.class_name!r}")
        _check_taps(kind, self.taps)
        if self.temperature != "learned" and (
            isinstance(self.temperature, (str, bool)) or not float(self.temperature) > 0
        ):
            raise ConfigError(
                f"{kind} temperature must be a number > 0 or 'learned', got {self.temperature!r}"
            )
        for key in ("smooth_sigma", "focal_weight", "dice_weight"):
            if float(getattr(self, key)) < 0:
                raise ConfigError(f"{kind} {key} must be >= 0, got {getattr(self, key)}")
        if self.frozen_cache not in (True, False, "auto"):
            raise ConfigError(f"{kind} frozen_cache must be true, false or auto")

    def describe(self, state: dict) -> dict[str, Any]:
        # Per-seed outcomes (the final loss) stay in state.json: seeds must group in the report.
        return {
            "weights": state.get("weights"),
            "prompts": self.prompts,
            "class_name": self.class_name,
            "taps": ",".join(str(b) for b in state.get("taps", [])),
            "temperature": self.temperature,
            "smooth_sigma": float(self.smooth_sigma),
            "focal_weight": float(self.focal_weight),
            "dice_weight": float(self.dice_weight),
            "epochs": int(self.epochs),
            "batch_size": int(self.batch_size),
            "lr": float(self.lr),
            "betas": ",".join(f"{float(b):g}" for b in self.betas),
            "amp": bool(self.amp),
            "frozen_cache": state.get("frozen_cache"),
            "train_categories": ",".join(state.get("train_categories", [])),
        }


@dataclass(frozen=True)
class AprilGanParams(LearnedClipParams):
    """APRIL-GAN (METHODS §2.2): one trainable linear layer per tap on raw residual tokens.

    ``taps`` null = the backbone's registry blocks (6/12/18/24 of ViT-L, 1-indexed); the map is
    the sum over taps of each tap's two-class softmax against the text prototypes at
    ``temperature`` 0.01 (CLIP's scale 100); the image score is plain zero-shot CLIP (no
    training reaches it). Loss: focal + dice per tap, summed. Adam, lr 1e-3, betas (0.5, 0.999),
    batch 8, 3 epochs (the MVTec AD -> VisA recipe; 15 for VisA -> MVTec AD). ``mosaic``: the
    probability that a training image is replaced by a 2×2 mosaic of four images of its class
    and their masks (VAND's ``aug_rate``, 0.2 on MVTec AD; off by default).
    """

    implementation: ClassVar[str] = "iadbench.methods.april_gan:AprilGan"
    kind_name: ClassVar[str] = "april_gan"

    temperature: float | str = 0.01
    epochs: int = 3
    betas: list = dataclasses.field(default_factory=lambda: [0.5, 0.999])
    mosaic: float = 0.0

    def frozen_blocks(self, model: str) -> tuple[int, ...]:
        return resolve_layers(model, self.taps)

    def augmented(self) -> bool:
        return float(self.mosaic) > 0

    def check(self) -> None:
        super().check()
        if not 0.0 <= float(self.mosaic) <= 1.0:
            raise ConfigError(f"april_gan mosaic must be in [0, 1], got {self.mosaic}")
        if self.augmented() and self.frozen_cache is True:
            raise ConfigError(
                "april_gan mosaic > 0 changes the training images, so their frozen tokens differ "
                "every time and a frozen-token cache cannot serve them; set frozen_cache: auto "
                "(off with mosaic) or false"
            )

    def describe(self, state: dict) -> dict[str, Any]:
        return {**super().describe(state), "mosaic": float(self.mosaic)}


@dataclass(frozen=True)
class FeClipParams(LearnedClipParams):
    """FE-CLIP (METHODS §3): FFE + LFS adapters fused into the residual stream at ``taps``.

    ``lam``: the fusion weight λ (``lambda`` is a Python keyword); ``P``/``Q``: FFE and LFS
    window sides; ``lfs_stat``: the statistic of the Q×Q DCT coefficients; ``fc_lr_mult``:
    ``fc_patch``'s lr as a factor of ``lr`` (0 = CLIP's own projection, frozen); ``map``: each
    tap's softmax probability or logit margin, averaged over taps; ``cls_weight``: the image
    loss's weight. Defaults: the paper's (λ 0.1, P = Q = 3, Adam 5e-4, 9 epochs, batch 16) and,
    where it is silent, a public reproduction's best (METHODS §3: taps 15/18/21/23 of 24 =
    [-9, -6, -3, -1], signed LFS mean, fc lr / 100, fixed τ 0.07).
    """

    implementation: ClassVar[str] = "iadbench.methods.fe_clip:FeClip"
    kind_name: ClassVar[str] = "fe_clip"

    taps: list | str | None = dataclasses.field(default_factory=lambda: [-9, -6, -3, -1])
    lam: float = 0.1
    P: int = 3
    Q: int = 3
    lfs_stat: str = "signed"
    fc_lr_mult: float = 0.01
    map: str = "prob"
    cls_weight: float = 1.0
    epochs: int = 9
    batch_size: int = 16
    lr: float = 0.0005

    def frozen_blocks(self, model: str) -> tuple[int, ...]:
        first = resolve_layers(model, self.taps)[0]  # the stream entering it = block first-1's
        return (first - 1,) if first > 0 else ()

    def check(self) -> None:
        super().check()
        if self.taps is None:
            raise ConfigError("fe_clip taps must name the adapted blocks (e.g. [-9, -6, -3, -1])")
        if not 0.0 <= float(self.lam) <= 1.0:
            raise ConfigError(f"fe_clip lam must be in [0, 1], got {self.lam}")
        for key in ("P", "Q"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"fe_clip {key} must be >= 1, got {getattr(self, key)}")
        if self.lfs_stat not in LFS_STATS:
            raise ConfigError(f"fe_clip lfs_stat must be one of {', '.join(LFS_STATS)}")
        if self.map not in ADAPTER_MAPS:
            raise ConfigError(f"fe_clip map must be one of {', '.join(ADAPTER_MAPS)}")
        for key in ("fc_lr_mult", "cls_weight"):
            if float(getattr(self, key)) < 0:
                raise ConfigError(f"fe_clip {key} must be >= 0, got {getattr(self, key)}")

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "lam": float(self.lam),
            "P": int(self.P),
            "Q": int(self.Q),
            "lfs_stat": self.lfs_stat,
            "fc_lr_mult": float(self.fc_lr_mult),
            "map": self.map,
            "cls_weight": float(self.cls_weight),
        }


# --- multimodal weld inspection (METHODS §6.3) -------------------------------------------------

SENSOR_ENCODERS = ("gru", "mamba")
SENSOR_NORMS = ("train", "sample")  # as iadbench.data.media.normalise_sensor spells them
VIEW_AGGREGATES = ("max", "mean")
# Needs.inputs of each embedding role (photos are images of the run).
ROLE_INPUTS = {"video": "video", "audio": "audio", "sensor": "sensor", "photo": "images"}


def _role_default(*roles: str):
    """Default ``encoders``: each role read from the encoder entry of the same name."""
    return dataclasses.field(default_factory=lambda: {role: role for role in roles})


def _positive(kind: str, params: Params, *keys: str, integer: bool = False) -> None:
    for key in keys:
        value = getattr(params, key)
        if isinstance(value, bool) or not (int(value) >= 1 if integer else float(value) > 0):
            raise ConfigError(f"{kind} {key} must be {'>= 1' if integer else '> 0'}, got {value}")


@dataclass(frozen=True)
class MultimodalParams(Params):
    """What the weld kinds share: ``encoders`` maps each of the kind's roles to a key of the
    config's ``encoders:``; one fit per dataset on TRAIN normal runs, image-level scores only."""

    kind_name: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ()

    encoders: dict = dataclasses.field(default_factory=dict)

    def needs(self) -> Needs:
        return Needs(
            frozenset(ROLE_INPUTS[role] for role in self.roles),
            "per_category",
            maps=False,
            embeddings=tuple((role, self.encoders[role]) for role in self.roles),
        )

    def check(self) -> None:
        encoders = self.encoders
        if (
            not isinstance(encoders, Mapping)
            or set(encoders) != set(self.roles)
            or not all(isinstance(name, str) and name for name in encoders.values())
        ):
            raise ConfigError(
                f"{self.kind_name} encoders must map exactly {', '.join(self.roles)} to keys of "
                f"encoders:, got {encoders!r}"
            )

    def describe(self, state: dict) -> dict[str, Any]:
        return {"encoders": ",".join(f"{r}={self.encoders[r]}" for r in self.roles)}


def _check_optional(kind: str, key: str, value: Any, upper: float | None) -> None:
    """``None`` or a number in (0, upper)."""
    if value is None:
        return
    if isinstance(value, bool) or not float(value) > 0 or (upper and not float(value) < upper):
        bound = f"in (0, {upper:g})" if upper else "> 0"
        raise ConfigError(f"{kind} {key} must be null or {bound}, got {value!r}")


def _check_text_anchor(kind: str, anchor: Any) -> None:
    """``None`` or exactly ``{prompt: non-empty string, weight: number > 0}``."""
    if anchor is None:
        return
    if not isinstance(anchor, Mapping) or set(anchor) != {"prompt", "weight"}:
        raise ConfigError(f"{kind} text_anchor must be null or {{prompt, weight}}, got {anchor!r}")
    prompt, weight = anchor["prompt"], anchor["weight"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{kind} text_anchor.prompt must be a non-empty string, got {prompt!r}")
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
        or weight <= 0
    ):
        raise ConfigError(f"{kind} text_anchor.weight must be a number > 0, got {weight!r}")


@dataclass(frozen=True)
class CausalFilmParams(MultimodalParams):
    """Causal-FiLM (METHODS §6.3): sensor-modulated video/audio process embedding predicts the
    post-weld photos' embedding; the prediction error is the score.

    ``sensor_encoder``: GRU or a selective-scan (Mamba-style) block of width ``sensor_dim``;
    ``sensor_norm``: z-score sensor channels with the TRAIN statistics or per run. Loss
    ``(1 − cos) + l1_weight·L1 + gram_weight·Gram``; score ``(1 − cos) + score_weight · mean of
    the top score_top_k fraction of |Z − Ẑ|``. AdamW with ``warmup_epochs`` then cosine, ``ema``
    (null = off), ``grad_clip`` (null = off), AMP on CUDA only; the epoch with the best VAL
    I-AUROC is kept. Defaults: the reference recipe (lr 2e-5, wd 2e-3, 100 epochs, batch 32,
    8 warm-up epochs, EMA 0.9999, d 512, 2 layers, 4 heads, GeM p 3, dropout 0.2).
    ``text_anchor`` ``{prompt, weight}`` adds ``weight · (1 − cos(W·Ẑ, t))`` to the loss, ``t``
    the prompt's unit embedding by the CLIP entry named in ``backbone:`` (which it requires) and
    ``W`` a learned linear map; training only, the score has no text term. null = off.
    """

    implementation: ClassVar[str] = "iadbench.methods.multimodal.causal_film:CausalFilm"
    kind_name: ClassVar[str] = "causal_film"
    roles: ClassVar[tuple[str, ...]] = ("video", "audio", "sensor", "photo")

    encoders: dict = _role_default("video", "audio", "sensor", "photo")
    sensor_encoder: str = "gru"
    sensor_dim: int = 64
    sensor_norm: str = "train"
    d_model: int = 512
    layers: int = 2
    heads: int = 4
    gem_p: float = 3.0
    decoder_dropout: float = 0.2
    l1_weight: float = 10.0
    gram_weight: float = 1.0
    score_weight: float = 10.0
    score_top_k: float = 0.5
    epochs: int = 100
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 2e-3
    warmup_epochs: int = 8
    ema: float | None = 0.9999
    grad_clip: float | None = 1.0
    amp: bool = True
    text_anchor: dict | None = None

    def check(self) -> None:
        super().check()
        kind = self.kind_name
        _check_text_anchor(kind, self.text_anchor)
        if self.sensor_encoder not in SENSOR_ENCODERS:
            raise ConfigError(f"{kind} sensor_encoder must be one of {', '.join(SENSOR_ENCODERS)}")
        if self.sensor_norm not in SENSOR_NORMS:
            raise ConfigError(f"{kind} sensor_norm must be one of {', '.join(SENSOR_NORMS)}")
        _positive(kind, self, "sensor_dim", "d_model", "layers", "heads", "epochs", integer=True)
        _positive(kind, self, "batch_size", integer=True)
        _positive(kind, self, "lr")
        if int(self.d_model) % int(self.heads):
            raise ConfigError(f"{kind} d_model {self.d_model} is not a multiple of heads")
        if not float(self.gem_p) >= 1:
            raise ConfigError(f"{kind} gem_p must be >= 1, got {self.gem_p}")
        if not 0 <= float(self.decoder_dropout) < 1:
            raise ConfigError(f"{kind} decoder_dropout must be in [0, 1)")
        if not 0 < float(self.score_top_k) <= 1:
            raise ConfigError(f"{kind} score_top_k must be in (0, 1], got {self.score_top_k}")
        for key in ("l1_weight", "gram_weight", "score_weight", "weight_decay"):
            if float(getattr(self, key)) < 0:
                raise ConfigError(f"{kind} {key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= int(self.warmup_epochs) <= int(self.epochs):
            raise ConfigError(f"{kind} warmup_epochs must be in 0..epochs")
        _check_optional(kind, "ema", self.ema, 1.0)
        _check_optional(kind, "grad_clip", self.grad_clip, None)

    def splits_read(self) -> frozenset[str]:
        return frozenset({"val"})

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "sensor_encoder": self.sensor_encoder,
            "sensor_norm": self.sensor_norm,
            "d_model": int(self.d_model),
            "epochs": int(self.epochs),
            "lr": float(self.lr),
            "warmup_epochs": int(self.warmup_epochs),
            "ema": self.ema,
            "text_anchor": (
                f"{self.text_anchor['weight']:g}:{self.text_anchor['prompt']}"
                if self.text_anchor
                else None
            ),
            "text_anchor_clip": (state.get("text_anchor") or {}).get("clip"),
            "selection": state.get("selection"),
        }


@dataclass(frozen=True)
class LateFusionParams(MultimodalParams):
    """Late fusion of an audio and a video autoencoder (METHODS §6.3, the Intel paper).

    Audio: a Conv1d autoencoder over the audio embedding's frames (``audio_widths``, then
    ``audio_bottleneck``; published 4×1024 and 48), score = mean per-frame error. Video: an FC
    autoencoder per frame (``video_widths``; published 512/256/128/64/64, ``video_dropout``
    0.5), score = max over time of the ``window_s`` moving average of frame errors. Each score is
    z-scored with the TRAIN runs' mean and std; fused ``w·audio + (1 − w)·video`` with ``w`` fixed
    or ``val`` (grid 0..1 step 0.01, best VAL I-AUROC). Small widths and epochs by default.
    """

    implementation: ClassVar[str] = "iadbench.methods.multimodal.late_fusion:LateFusion"
    kind_name: ClassVar[str] = "late_fusion"
    roles: ClassVar[tuple[str, ...]] = ("audio", "video")

    encoders: dict = _role_default("audio", "video")
    audio_widths: list = dataclasses.field(default_factory=lambda: [64, 64, 64, 64])
    audio_bottleneck: int = 16
    audio_epochs: int = 10
    audio_lr: float = 1e-4
    video_widths: list = dataclasses.field(default_factory=lambda: [128, 64, 32, 16, 16])
    video_dropout: float = 0.5
    video_epochs: int = 10
    video_lr: float = 5e-4
    batch_size: int = 8
    video_batch_size: int = 256
    window_s: float = 2.0
    w: float | str = "val"

    def check(self) -> None:
        super().check()
        kind = self.kind_name
        for key in ("audio_widths", "video_widths"):
            widths = getattr(self, key)
            if (
                not isinstance(widths, list)
                or not widths
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in widths)
            ):
                raise ConfigError(f"{kind} {key} must be a non-empty list of integers >= 1")
        _positive(kind, self, "audio_bottleneck", "audio_epochs", "video_epochs", integer=True)
        _positive(kind, self, "batch_size", "video_batch_size", integer=True)
        _positive(kind, self, "audio_lr", "video_lr", "window_s")
        if not 0 <= float(self.video_dropout) < 1:
            raise ConfigError(f"{kind} video_dropout must be in [0, 1)")
        if self.w != "val" and (isinstance(self.w, (bool, str)) or not 0.0 <= float(self.w) <= 1.0):
            raise ConfigError(f"{kind} w must be a number in [0, 1] or 'val', got {self.w!r}")

    def splits_read(self) -> frozenset[str]:
        return frozenset({"val"})

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "w": self.w,
            "window_s": float(self.window_s),
            "audio_bottleneck": int(self.audio_bottleneck),
            "audio_epochs": int(self.audio_epochs),
            "video_epochs": int(self.video_epochs),
        }


@dataclass(frozen=True)
class ViewPatchCoreParams(MultimodalParams):
    """PatchCore on the post-weld photos (METHODS §6.3, image-only baseline).

    Memory bank: the patch tokens of every TRAIN view, reduced by the approximate greedy coreset
    (``coreset`` fraction, ``projection_dim``, ``n_starts``); view score = max over its patches
    of the mean distance to the ``num_nn`` nearest bank patches; run score = ``aggregate`` (max
    or mean) over the run's views.
    """

    implementation: ClassVar[str] = "iadbench.methods.multimodal.view_patchcore:ViewPatchCore"
    kind_name: ClassVar[str] = "view_patchcore"
    roles: ClassVar[tuple[str, ...]] = ("photo",)

    encoders: dict = _role_default("photo")
    coreset: float = 0.1
    projection_dim: int = 128
    n_starts: int = 10
    num_nn: int = 1
    knn_backend: str = "auto"
    aggregate: str = "max"

    def check(self) -> None:
        super().check()
        kind = self.kind_name
        if not 0.0 < float(self.coreset) <= 1.0:
            raise ConfigError(f"{kind} coreset fraction must be in (0, 1], got {self.coreset}")
        _positive(kind, self, "projection_dim", "n_starts", "num_nn", integer=True)
        if self.knn_backend not in KNN_BACKENDS:
            raise ConfigError(f"{kind} knn_backend must be one of {', '.join(KNN_BACKENDS)}")
        if self.aggregate not in VIEW_AGGREGATES:
            raise ConfigError(f"{kind} aggregate must be one of {', '.join(VIEW_AGGREGATES)}")

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "bank_size": state.get("bank_size"),
            "coreset": float(self.coreset),
            "aggregate": self.aggregate,
        }


PARAMS: dict[str, type[Params]] = {
    "patchcore": PatchCoreParams,
    "padim": PadimParams,
    "classifier": ClassifierParams,
    "cascade": CascadeParams,
    "winclip": WinClipParams,
    "crane": CraneParams,
    "april_gan": AprilGanParams,
    "fe_clip": FeClipParams,
    "causal_film": CausalFilmParams,
    "late_fusion": LateFusionParams,
    "view_patchcore": ViewPatchCoreParams,
}
# The kind registry: name -> "module:Class" of the implementation (imported by jobs only).
KINDS: dict[str, str] = {name: cls.implementation for name, cls in PARAMS.items()}


def import_string(target: str) -> Any:
    """``"package.module:Name"`` -> the object, with an error that names the string."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ConfigError(f"{target!r} is not a 'module:Class' import string")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {target!r}: {exc}") from None


def params_class(kind: str) -> type[Params]:
    """A registered kind's parameter class, or the class a ``"module:Class"`` kind names."""
    if kind in PARAMS:
        return PARAMS[kind]
    if isinstance(kind, str) and ":" in kind:
        cls = import_string(kind)
        if not (isinstance(cls, type) and issubclass(cls, Params) and cls.implementation):
            raise ConfigError(
                f"kind {kind!r} must name a Params dataclass with an 'implementation' string"
            )
        return cls
    raise ConfigError(f"unknown kind {kind!r} (registered: {', '.join(sorted(PARAMS))})")


def params_of(entry: dict) -> Params:
    """The validated parameters of one (concrete, defaults filled) method entry."""
    return params_class(entry["kind"]).from_entry(entry)


def needs_of(entry: dict) -> Needs:
    """What one method entry needs; may depend on its parameters."""
    return params_of(entry).needs()
