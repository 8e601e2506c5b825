"""WinCLIP (Jeong et al., CVPR 2023), zero-shot and few-shot WinCLIP+, on cached CLIP outputs.

Zero-shot (``k_shot: 0``, no fit): text prototypes of the prompt ensemble filled with the
category's class name; image score = two-class softmax of the CLS embedding at ``temperature``;
window scores of every ``windows`` size aggregated harmonically to patches; map = harmonic mean of
those and (``include_image``) the image score; bilinear upsampling (METHODS §2.1).

Few-shot (``k_shot: k``): a per-category fit draws k normal ``train`` images with ``seed`` and
stores their patch tokens (``shot_block`` on ``shot_token_path``) and window embeddings; scoring
adds the association map (min over the references of (1 - cos) / 2 at patch and window scales,
arithmetic mean over scales) and averages it with the zero-shot map and score.

The maths is :mod:`.windows`; this class only reads caches and writes state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from iadbench.clip.encoder import prototypes
from iadbench.clip.scoring import upsample
from iadbench.errors import CacheError
from iadbench.io import save_json
from iadbench.methods.base import Method, MethodInputs, load_state
from iadbench.methods.winclip.params import WinClipParams
from iadbench.methods.winclip.windows import (
    ReferenceMemory,
    combine_few_shot,
    few_shot_map,
    window_indices,
    zero_shot,
)


class WinClip(Method):
    """Window-based CLIP anomaly scores; a few-shot memory when ``k_shot`` > 0."""

    kind = "winclip"
    params_class = WinClipParams
    params: WinClipParams

    @property
    def sizes(self) -> list[int]:
        return sorted(int(w) for w in self.params.windows)

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        """Draw the k references and store their patch tokens and window embeddings."""
        from iadbench.clip.outputs import encode_visual, image_batches, load_encoder
        from iadbench.methods.winclip.shots import draw_references
        from iadbench.methods.winclip.windows import encode_window_sets

        normals = train.index[train.index["label"] == 0].reset_index(drop=True)
        picks = draw_references(normals["image_path"].tolist(), int(self.params.k_shot), self.seed)
        refs = normals.iloc[picks]
        paths = refs["image_path"].tolist()
        encoder = load_encoder(train.backbone, self.device)
        blocks = [int(self.params.shot_block)]

        def batches():
            return image_batches(paths, train.dataset, encoder, len(paths), "references")

        visual = encode_visual(encoder, batches(), self.params.shot_token_path, blocks)
        windows = encode_window_sets(encoder, batches(), self.sizes)
        np.savez(Path(state_dir) / "memory.npz", patches=visual["tokens"][:, 0], **windows)
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "references": refs["sample_id"].tolist(),
            "grid": list(encoder.grid),
            "weights": encoder.weights.identity,
        }
        save_json(Path(state_dir) / "state.json", state)
        return state

    def score(self, state_dir: Path | None, inputs: MethodInputs, out_size: tuple[int, int]):
        visual, windows, text = (inputs.cached[k] for k in ("visual", "windows", "text"))
        grid = tuple(visual["meta"]["grid"])
        protos = prototypes(
            torch.from_numpy(text["normal"]),
            torch.from_numpy(text["anomalous"]),
            bool(self.params.normalize_each),
        )
        index = [window_indices(grid, k) for k in self.sizes]
        embeddings = [torch.from_numpy(windows[f"w{k}"]) for k in self.sizes]
        scores, maps = zero_shot(
            torch.from_numpy(visual["cls"]),
            embeddings,
            index,
            protos,
            grid,
            float(self.params.temperature),
            bool(self.params.include_image),
        )
        if int(self.params.k_shot) > 0:
            memory = self._memory(state_dir, grid, visual["meta"]["identity"]["weights"])
            tokens = torch.from_numpy(visual["tokens"][:, 0])
            scores, maps = combine_few_shot(
                maps, scores, few_shot_map(tokens, embeddings, index, memory)
            )
        full = upsample(maps, out_size).numpy()
        identity = visual["meta"]["identity"]
        columns = {
            "class_name": text["meta"]["class_name"],
            "backbone_model": identity["model"],
            "weights": identity["weights"],
        }
        return scores.double().numpy(), full, {k: [v] * len(full) for k, v in columns.items()}

    def _memory(self, state_dir: Path | None, grid: tuple, weights: str) -> ReferenceMemory:
        """The fitted references, refused when made by other weights or at another grid."""
        if state_dir is None:
            raise CacheError("winclip with k_shot > 0 needs its fitted references")
        state = load_state(state_dir)
        if tuple(state["grid"]) != grid or state["weights"] != weights:
            raise CacheError(
                f"{state_dir}: references encoded by {state['weights']} on a {state['grid']} "
                f"grid; the test images by {weights} on a {list(grid)} grid"
            )
        with np.load(Path(state_dir) / "memory.npz") as data:
            patches = torch.from_numpy(data["patches"])
            windows = tuple(torch.from_numpy(data[f"w{k}"]) for k in self.sizes)
        return ReferenceMemory(
            patches=patches.reshape(-1, patches.shape[-1]),
            windows=tuple(w.reshape(-1, w.shape[-1]) for w in windows),
        )
