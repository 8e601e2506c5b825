"""The trained CLIP kinds' shared parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.errors import ConfigError
from iadbench.methods.params import Needs, Params, param
from iadbench.methods.shared import class_name_param

# A two-class softmax temperature, or CLIP's learned logit scale.
TEMPERATURE = {"oneOf": [{"type": "number", "exclusiveMinimum": 0}, {"const": "learned"}]}


@dataclass(frozen=True)
class LearnedClipParams(Params):
    """What the trained CLIP kinds share: prompts, taps, the loss weights and the training loop.

    Trained once on a ``train_sets:`` entry (``train_on``): images, masks and the text
    prototypes of each training category's class name; scored on any dataset with its own.
    ``frozen_cache``: start every epoch of every seed from the frozen residual stream cached
    once per (train set, backbone, blocks) instead of running CLIP's frozen blocks again;
    ``auto`` = on unless an augmentation changes the images (then the stream differs each time).
    Subclasses declare ``taps``, ``temperature``, ``epochs``, ``batch_size``, ``lr``, ``betas``.
    """

    kind_name: ClassVar[str] = ""
    entry_keys: ClassVar[dict[str, str]] = {
        **Params.entry_keys,
        "backbone": "a CLIP backbone entry (frozen)",
        "seed": "the head's initialisation and the training loop's shuffles",
        "train_on": "a train_sets key, e.g. a dataset's test split (METHODS §7.6)",
    }
    required_keys: ClassVar[tuple[str, ...]] = ("backbone", "train_on")

    prompts: str = param(
        "april_gan", "april_gan (7/5 states x 35 templates), winclip, or a prompt_sets key"
    )
    class_name: str = class_name_param()
    smooth_sigma: float = param(
        0.0, "Gaussian blur (px) of the upsampled score map; 0 = none", minimum=0
    )
    focal_weight: float = param(1.0, "weight of the focal loss", minimum=0)
    dice_weight: float = param(1.0, "weight of the dice loss", minimum=0)
    amp: bool = param(True, "autocast + GradScaler on CUDA only")
    frozen_cache: bool | str = param(
        "auto",
        "start every epoch and seed from the frozen residual stream cached once per (train set, "
        "backbone, blocks) (fp16, memory-mapped) instead of rerunning CLIP's frozen blocks; "
        "auto = on unless an augmentation changes the images",
        schema={"oneOf": [{"type": "boolean"}, {"const": "auto"}]},
    )

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


def betas_param(default: list[float]) -> Any:
    return param(
        default,
        "Adam's moment decays",
        minItems=2,
        maxItems=2,
        items={"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    )
