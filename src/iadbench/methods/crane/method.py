"""The training-free Crane + Bayes-prompt + ResCLIP system (METHODS §12) on cached CLIP outputs.

Nothing is fitted: a score job reads the Crane view (the refined path's projected tokens at the
taps and the original path's CLS, :func:`.views.encode_crane`), the sentence
embeddings of the prompt set and, with Bayes sampling, the R cached noisy prototype pairs. The
deterministic output scores the tokens against the plain prototypes; the Bayes output is the
mean over the R noisy pairs, with the per-image score std and per-pixel map std kept; the result
is ``(1 − α)·deterministic + α·Bayes`` for maps and image scores. ``sigma: 0`` is the
deterministic output with a std of exactly zero. Labels and masks are never read.

The maths is :mod:`.refined` and :mod:`.bayes`; this class reads caches.
"""

from __future__ import annotations

from pathlib import Path

import torch

from iadbench.clip.encoder import prototypes
from iadbench.errors import CacheError
from iadbench.methods.base import Method, MethodInputs
from iadbench.methods.crane.bayes import fuse, sample_outputs
from iadbench.methods.crane.params import CraneParams
from iadbench.methods.crane.refined import CraneTokens, crane_scores

CHUNK = 16  # images scored at once: R upsampled maps per image stay in memory


class Crane(Method):
    """Crane's refined-path maps, optionally averaged over noisy prompts and fused."""

    kind = "crane"
    params_class = CraneParams
    params: CraneParams

    def score(self, state_dir: Path | None, inputs: MethodInputs, out_size: tuple[int, int]):
        visual, text = inputs.cached["visual"], inputs.cached["text"]
        plain = prototypes(
            torch.from_numpy(text["normal"]), torch.from_numpy(text["anomalous"]), True
        )
        noisy = self._noisy(inputs.cached.get("noisy_text"), text)
        sources = tuple((int(b), str(k)) for b, k in visual["meta"]["sources"])
        tokens, cls = torch.from_numpy(visual["tokens"]), torch.from_numpy(visual["cls"])
        parts = [
            self._chunk(
                CraneTokens(cls[i : i + CHUNK], tuple(tokens[i : i + CHUNK].unbind(1)), sources),
                plain,
                noisy,
                out_size,
            )
            for i in range(0, len(cls), CHUNK)
        ]
        scores, maps, score_std, map_std = (torch.cat(list(p)) for p in zip(*parts))
        identity = visual["meta"]["identity"]
        options = identity["options"]
        columns = {
            "class_name": text["meta"]["class_name"],
            "backbone_model": identity["model"],
            "weights": identity["weights"],
            "taps": ",".join(str(b) for b in options["taps"]),
            "eattn_from": options["eattn_from"],
        }
        if options.get("rcs") is not None:
            columns["rcs_layers"] = ",".join(str(b) for b in options["rcs"]["layers"])
        if identity["guide"] is not None:
            columns["dino_weights"] = identity["guide"]["weights"]
        columns = {k: [v] * len(scores) for k, v in columns.items()}
        if self.params.needs().uncertainty:
            columns["score_std"] = score_std.double().numpy()
            columns["map_std_mean"] = map_std.double().numpy()
        return scores.double().numpy(), maps.float().numpy(), columns

    def _chunk(
        self,
        outputs: CraneTokens,
        plain: torch.Tensor,
        noisy: torch.Tensor | None,
        out_size: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores, maps, score std and mean map std of some images (std zero without noise)."""
        p = self.params

        def score_fn(protos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return crane_scores(
                outputs,
                protos,
                out_size,
                p.image_score_mode,
                float(p.temperature),
                float(p.sigma),
                bool(p.soft_mean),
                bool(p.upsample_logits),
            )

        scores, maps = score_fn(plain)
        if noisy is None:  # no sampling, or sigma 0: the deterministic path, zero spread
            return scores, maps, torch.zeros_like(scores), torch.zeros_like(scores)
        bayes = sample_outputs(score_fn, noisy)
        alpha = float(p.fusion_alpha)
        return (
            fuse(scores, bayes.scores, alpha),
            fuse(maps, bayes.maps, alpha),
            bayes.score_std,
            bayes.mean_map_std,
        )

    def _noisy(self, cached: dict | None, text: dict) -> torch.Tensor | None:
        """The (R, 2, D) noisy prototypes, refused unless drawn from the same sentences."""
        if cached is None:
            if self.params.needs().noisy_text is not None:
                raise CacheError("crane with bayes sigma > 0 needs its cached noisy prototypes")
            return None
        for state in ("normal", "anomalous"):
            if list(cached[f"{state}_sentences"]) != list(text[f"{state}_sentences"]):
                raise CacheError(
                    f"the cached noisy prototypes were drawn from other {state} sentences "
                    "than the cached text embeddings"
                )
        return torch.from_numpy(cached["prototypes"])
