"""WinCLIP's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.clip.token_paths import TOKEN_PATHS
from iadbench.methods.params import Needs, Params, param
from iadbench.methods.shared import class_name_param

TEMPERATURE = 0.07  # METHODS §0: softmax over cosines / 0.07, i.e. logit scale 100
WINDOWS = (2, 3)  # 2x2 and 3x3 patches (32 and 48 px at patch 16)


@dataclass(frozen=True)
class WinClipParams(Params):
    """WinCLIP (METHODS §2.1): zero-shot window scoring; ``k_shot`` > 0 adds WinCLIP+.

    ``prompts`` names a built-in ensemble (``winclip``, ``winclip_anomalib``, ``april_gan``) or
    a ``prompt_sets:`` entry; ``class_name: auto`` takes the dataset's ``class_names`` mapping
    (default: the category with ``_`` as spaces), ``object`` the literal word. Few-shot
    references are drawn from ``train`` normal images with ``seed``; their patch tokens come from
    ``shot_block`` on ``shot_token_path`` (anomalib: the last block after ln_post).
    """

    implementation: ClassVar[str] = "iadbench.methods.winclip.method:WinClip"
    entry_keys: ClassVar[dict[str, str]] = {
        **Params.entry_keys,
        "backbone": "a CLIP backbone entry",
        "seed": "few-shot reference draw",
    }
    required_keys: ClassVar[tuple[str, ...]] = ("backbone",)

    prompts: str = param(
        "winclip",
        "winclip (7/4 states x 22 templates), winclip_anomalib (anomalib 2.7.0's 21 templates, "
        "for reference parity), april_gan, or a prompt_sets key",
    )
    class_name: str = class_name_param()
    windows: list = param(
        list(WINDOWS),
        "window sides in patches (stride 1)",
        minItems=1,
        uniqueItems=True,
        items={"type": "integer", "minimum": 1},
    )
    temperature: float = param(
        TEMPERATURE, "two-class softmax temperature of window and image scores", exclusiveMinimum=0
    )
    include_image: bool = param(
        True, "fuse the image score into the map's harmonic mean (anomalib)"
    )
    normalize_each: bool = param(
        False,
        "normalise each sentence embedding before averaging (APRIL-GAN) instead of averaging raw "
        "embeddings (WinCLIP)",
    )
    k_shot: int = param(
        0, "normal train references for WinCLIP+ (0 = zero-shot, no fit)", minimum=0
    )
    shot_block: int = param(-1, "block of the references' patch tokens (negative from the end)")
    shot_token_path: str = param(
        "ln_post",
        "patch tokens after ln_post (anomalib), projected, or raw",
        enum=list(TOKEN_PATHS),
    )

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

    def describe(self, state: dict) -> dict[str, Any]:
        # The drawn references differ by seed and category; they stay in state.json.
        return {"prompts": self.prompts, "k_shot": int(self.k_shot)}
