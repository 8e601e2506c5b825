"""Dinomaly (METHODS §5.2) and its weld variant (§6.3): images in, trained decoder, maps out.

The method reads its images itself at its own geometry (``image_size`` resize, ``crop_size``
centre crop), because the published model runs at 448 -> 392 whatever the dataset's evaluation
geometry; its map is then brought onto the dataset's crop (see :func:`to_dataset_crop`).

Training is iteration-based as in the paper (not epochs): pass ``e`` over the training images
is a permutation drawn from ``(seed, e)``, the last incomplete batch of a pass is dropped, and
torch is reseeded from ``(seed, it)`` before every step, so a run resumed from a checkpoint
(every ``eval_every`` iterations, outside the Snakemake output) ends with the same weights as
an uninterrupted one on CPU. Selection (``select``) reads the val split only; test is never
read here (:meth:`MethodInputs.split_rows` refuses it).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from iadbench.data.images import load_image
from iadbench.data.media import read_photo
from iadbench.device import resolve_device
from iadbench.errors import ConfigError
from iadbench.io import atomic_path, save_json
from iadbench.methods.base import Method, MethodInputs, load_state
from iadbench.methods.dinomaly.model import (
    Dinomaly,
    anomaly_maps,
    default_taps,
    gaussian_kernel,
    hard_mining_loss,
    lr_at,
    p_at,
)
from iadbench.methods.dinomaly.params import DinomalyParams, ViewDinomalyParams
from iadbench.progress import Progress
from iadbench.training.checkpoint import CHECKPOINT_NAME, save_torch

log = logging.getLogger(__name__)

WEIGHTS = "decoder.pt"
LOSS_LOG = "loss_log.csv"
CHECKPOINT_FORMAT = 1


def _seed(seed: int, stream: str, n: int) -> int:
    digest = hashlib.sha256(f"iadbench.dinomaly:{stream}:{seed}:{n}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def build_encoder(name: str, weights: str, seed: int) -> tuple[torch.nn.Module, tuple, tuple, str]:
    """(timm ViT with dynamic image size, mean, std, weights identity) from the backbone
    registry and its weights.

    Built at the registry's native size; position embeddings are interpolated to the crop's grid
    at run time (timm ``dynamic_img_size``, as anomalib does).
    """
    import timm

    from iadbench.backbones.loader import Preprocessing, _load_weights
    from iadbench.backbones.registry import spec_for
    from iadbench.backbones.weights import resolve_weights

    spec = spec_for(name)

    def build(spec, tag):
        kwargs = dict(spec.model_kwargs, dynamic_img_size=True)
        if spec.img_size is not None:
            kwargs["img_size"] = spec.img_size
        model = timm.create_model(
            f"{spec.library_name}.{tag}" if tag else spec.library_name, pretrained=False, **kwargs
        )
        data = timm.data.resolve_data_config({}, model=model)
        return model, Preprocessing(tuple(data["mean"]), tuple(data["std"]), None)

    resolved = resolve_weights(weights, spec)
    model, prep = _load_weights(spec, resolved, seed, build)
    return model, prep.mean, prep.std, resolved.identity


def centre_crop(rgb: np.ndarray, crop: int) -> np.ndarray:
    """The central ``crop`` x ``crop`` of a square uint8 image (torchvision's CenterCrop box)."""
    off = int(round((rgb.shape[0] - crop) / 2.0))
    return rgb[off : off + crop, off : off + crop]


def to_dataset_crop(
    maps: torch.Tensor, method_fraction: float, dataset_fraction: float, out_size: tuple[int, int]
) -> torch.Tensor:
    """Maps over the method's centre crop (``crop_size / image_size`` of the image) -> maps over
    the dataset geometry's crop (``crop / resize``) at ``out_size``, bilinear. A dataset crop
    wider than the method's is refused: the method saw nothing of that border."""
    if dataset_fraction > method_fraction + 1e-9:
        raise ConfigError(
            f"dinomaly: the dataset's crop covers {dataset_fraction:.4f} of the image but the "
            f"method's crop_size/image_size only {method_fraction:.4f}; use a dataset crop/resize "
            "at most the method's, or a larger crop_size"
        )
    size = maps.shape[-1]
    keep = size * dataset_fraction / method_fraction
    if size - keep > 1e-6:
        off = int(round((size - keep) / 2))
        maps = maps[..., off : size - off, off : size - off]
    return F.interpolate(maps[:, None], size=out_size, mode="bilinear", align_corners=False)[:, 0]


class DinomalyMethod(Method):
    kind = "dinomaly"
    params_class = DinomalyParams
    params: DinomalyParams

    # --- images -----------------------------------------------------------------------------

    def views(self, row: pd.Series) -> list[str]:
        """The image files of one sample (one image; a weld run has several photos)."""
        return [row["image_path"]]

    def load_view(self, path: str, rows: pd.DataFrame) -> np.ndarray:
        """uint8 (crop, crop, 3): resize to image_size (PIL bilinear), centre crop."""
        size = int(self.params.image_size)
        rgb = np.asarray(Image.fromarray(load_image(path)).resize((size, size), Image.BILINEAR))
        return centre_crop(rgb, int(self.params.crop_size))

    def stack(self, rows: pd.DataFrame, context: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 (V, crop, crop, 3), owner (V,)): every view of ``rows``, with its row index."""
        images, owner = [], []
        for i, (_, row) in enumerate(
            Progress(rows.iterrows(), total=len(rows), desc="dinomaly images", unit="sample")
        ):
            for path in self.views(row):
                images.append(self.load_view(path, context))
                owner.append(i)
        if not images:
            raise ValueError("dinomaly: no images to read")
        return np.stack(images), np.asarray(owner)

    # --- the network -------------------------------------------------------------------------

    def network(self, device: torch.device) -> tuple[Dinomaly, dict]:
        """The seeded network (decoder initialised from ``seed``) and its normalisation."""
        p = self.params
        encoder, mean, std, identity = build_encoder(p.encoder, p.weights, self.seed)
        taps = tuple(p.taps) if p.taps is not None else default_taps(len(encoder.blocks))
        if max(taps) >= len(encoder.blocks):
            raise ConfigError(f"dinomaly: taps {list(taps)} beyond {len(encoder.blocks)} blocks")
        torch.manual_seed(self.seed)
        net = Dinomaly(
            encoder, taps, p.groups, int(p.decoder_depth), float(p.dropout), bool(p.mlp_bias)
        )
        info = {"taps": list(taps), "encoder_weights": identity, "mean": mean, "std": std}
        return net.to(device), info

    @staticmethod
    def normalise(images: np.ndarray, info: dict, device: torch.device) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)
        x = x.float() / 255.0
        mean = torch.tensor(info["mean"], device=device).view(1, 3, 1, 1)
        std = torch.tensor(info["std"], device=device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def infer(
        self, net: Dinomaly, images: np.ndarray, info: dict, device: torch.device
    ) -> tuple[np.ndarray, torch.Tensor]:
        """Image scores (V,) and smoothed maps (V, eval_size, eval_size) of uint8 views."""
        p = self.params
        net.eval()
        kernel = gaussian_kernel(int(p.smooth_kernel), float(p.smooth_sigma))
        scores, maps = [], []
        for start in range(0, len(images), int(p.batch_size)):
            x = self.normalise(images[start : start + int(p.batch_size)], info, device)
            enc, dec = net(x)
            s, m = anomaly_maps(
                enc,
                dec,
                int(p.crop_size),
                int(p.eval_size),
                kernel,
                float(p.max_ratio),
                p.smooth_padding,
            )
            scores.append(s.double().cpu())
            maps.append(m.cpu())
        return torch.cat(scores).numpy(), torch.cat(maps)

    def aggregate(self, view_scores: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
        """A sample's score from its views' scores (one view: itself)."""
        return np.array([view_scores[owner == i].max() for i in range(n)])

    # --- training ---------------------------------------------------------------------------

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        """Per-category model (``multi_class: false``); restarts if interrupted."""
        return self._train([train], Path(state_dir), None)

    def train(self, parts: list[MethodInputs], out_dir: Path, resume_dir: Path) -> dict:
        """One model on the TRAIN images of every category (``multi_class``), resumable."""
        return self._train(parts, Path(out_dir), resume_dir)

    def _val_fn(self, parts: list[MethodInputs]) -> Callable | None:
        """Mean over categories (with normal and anomalous val samples) of the val AUROC."""
        from sklearn.metrics import roc_auc_score

        p = self.params
        sets = []
        for part in parts:
            rows = part.split_rows("val")
            labels = rows["label"].to_numpy() if len(rows) else np.array([])
            if len(set(labels.tolist())) == 2:
                sets.append((rows, labels, part.rows))
        if not sets:
            if p.select == "val":
                raise ConfigError(
                    "dinomaly select: val needs a val split with normal and anomalous samples "
                    "(add val_split: to the dataset) or select: last"
                )
            return None
        if p.select == "last":
            return None
        loaded = [(*self.stack(rows, context), labels) for rows, labels, context in sets]

        def val_fn(net: Dinomaly, info: dict, device: torch.device) -> float:
            aurocs = []
            for images, owner, labels in loaded:
                view_scores, _ = self.infer(net, images, info, device)
                scores = self.aggregate(view_scores, owner, len(labels))
                aurocs.append(roc_auc_score(labels, scores))
            return float(np.mean(aurocs))

        return val_fn

    def _train(self, parts: list[MethodInputs], out_dir: Path, resume_dir: Path | None) -> dict:
        p = self.params
        device = resolve_device(self.device)
        rows = pd.concat([part.index for part in parts], ignore_index=True)
        if (rows["label"] != 0).any():
            raise ValueError("dinomaly trains on normal samples only, but TRAIN holds anomalies")
        images = np.concatenate([self.stack(part.index, part.rows)[0] for part in parts])
        val_fn = self._val_fn(parts)
        net, info = self.network(device)
        log.info(
            "dinomaly: %d training images from %d categories, %d iterations, selection %s",
            len(images), len(parts), p.iterations, "val" if val_fn else "last",
        )  # fmt: skip
        summary = run_training(self, net, info, images, val_fn, resume_dir, device)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_torch(out_dir / WEIGHTS, summary.pop("weights"))
        write_log(out_dir / LOSS_LOG, summary.pop("rows"))
        categories = sorted({str(c) for c in rows["category"]})
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "categories": categories,
            "n_train_samples": len(rows),
            "n_train_images": len(images),
            "taps": info["taps"],
            "encoder_weights": info["encoder_weights"],
            **summary,
        }
        save_json(out_dir / "state.json", state)
        return state

    # --- scoring ----------------------------------------------------------------------------

    def scorer(self, state_dir: Path | None):
        if state_dir is None:
            raise ValueError("dinomaly scores with a trained model (state_dir is None)")
        state = load_state(state_dir)
        device = resolve_device(self.device)
        net, info = self.network(device)
        if info["encoder_weights"] != state["encoder_weights"]:
            raise ConfigError(
                f"{state_dir}: trained with encoder weights {state['encoder_weights']}, "
                f"now {info['encoder_weights']}"
            )
        weights = torch.load(Path(state_dir) / WEIGHTS, map_location="cpu", weights_only=True)
        net.load_trainable(weights)
        net.eval()

        def score(inputs: MethodInputs, out_size: tuple[int, int]):
            images, owner = self.stack(inputs.index, inputs.rows)
            view_scores, maps = self.infer(net, images, info, device)
            scores = self.aggregate(view_scores, owner, len(inputs.index))
            return scores, self.dataset_maps(maps, inputs.dataset, out_size)

        return score

    def dataset_maps(self, maps: torch.Tensor, geometry: dict, out_size: tuple[int, int]):
        p = self.params
        fraction = int(geometry.get("crop", 224)) / int(geometry.get("resize", 256))
        mine = int(p.crop_size) / int(p.image_size)
        return to_dataset_crop(maps, mine, fraction, out_size).numpy().astype(np.float32)

    def score(self, state_dir: Path | None, inputs: MethodInputs, out_size: tuple[int, int]):
        return self.scorer(state_dir)(inputs, out_size)


class ViewDinomaly(DinomalyMethod):
    """Dinomaly on a weld run's post-weld photos, label box blanked; run = aggregate of views."""

    kind = "view_dinomaly"
    params_class = ViewDinomalyParams
    params: ViewDinomalyParams

    def views(self, row: pd.Series) -> list[str]:
        paths = list(row["photo_paths"])
        if not paths:
            raise ValueError(f"view_dinomaly: run {row['sample_id']!r} has no photos")
        return paths

    def load_view(self, path: str, rows: pd.DataFrame) -> np.ndarray:
        size = int(self.params.image_size)
        box = rows.attrs.get("label_mask")
        rgb = read_photo(path, size=(size, size), label_mask=box)
        return centre_crop(rgb, int(self.params.crop_size))

    def aggregate(self, view_scores: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
        reduce = np.max if self.params.aggregate == "max" else np.mean
        return np.array([reduce(view_scores[owner == i]) for i in range(n)])

    def dataset_maps(self, maps, geometry, out_size):
        return None


# --- the iteration loop ------------------------------------------------------------------------


def _load_checkpoint(path: Path, identity: dict) -> dict | None:
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file
        log.warning("discarding resume checkpoint %s (%s); starting fresh", path, exc)
        return None
    if not isinstance(ckpt, dict) or ckpt.get("identity") != identity:
        log.warning("discarding resume checkpoint %s: another run's; starting fresh", path)
        return None
    return ckpt


def run_training(
    method: DinomalyMethod,
    net: Dinomaly,
    info: dict,
    images: np.ndarray,
    val_fn: Callable | None,
    resume_dir: Path | None,
    device: torch.device,
) -> dict:
    """Train ``net``'s bottleneck and decoder for ``iterations`` steps; return the kept weights,
    the log rows and the selection summary."""
    from optimi import StableAdamW

    p = method.params
    n, bs, total = len(images), int(p.batch_size), int(p.iterations)
    drop_last = n >= bs
    per_pass = n // bs if drop_last else 1
    trainable = [q for q in net.parameters() if q.requires_grad]
    opt = StableAdamW(
        trainable,
        lr=float(p.lr),
        betas=tuple(float(b) for b in p.betas),
        weight_decay=float(p.weight_decay),
        eps=float(p.eps),
        triton=False,  # its Triton kernel needs a GPU driver; the foreach path runs anywhere
    )
    identity = {"format": CHECKPOINT_FORMAT, "config": method.cfg, "n_images": n}
    ckpt_path = Path(resume_dir, CHECKPOINT_NAME) if resume_dir is not None else None
    start, rows, best, resumed = 0, [], {"score": None, "iteration": None, "weights": None}, None
    ckpt = _load_checkpoint(ckpt_path, identity) if ckpt_path else None
    if ckpt is not None:
        net.load_trainable(ckpt["weights"])
        opt.load_state_dict(ckpt["optimizer"])
        start, rows, best = int(ckpt["iteration"]), list(ckpt["rows"]), dict(ckpt["best"])
        resumed = start
        log.info("dinomaly: resuming from iteration %d (%s)", start, resume_dir)
    order, order_pass = None, -1
    period_loss, period_steps, started = 0.0, 0, time.perf_counter()
    net.train()
    with Progress(total=total, initial=start, desc="dinomaly", unit="it", disable=None) as bar:
        for it in range(start, total):
            epoch, j = divmod(it, per_pass)
            if epoch != order_pass:
                gen = torch.Generator().manual_seed(_seed(method.seed, "pass", epoch))
                order, order_pass = torch.randperm(n, generator=gen), epoch
            index = order[j * bs : (j + 1) * bs].numpy()
            torch.manual_seed(_seed(method.seed, "step", it))
            lr = lr_at(it, total, float(p.lr), float(p.final_lr), int(p.warmup_iters))
            for group in opt.param_groups:
                group["lr"] = lr
            enc, dec = net(method.normalise(images[index], info, device))
            loss = hard_mining_loss(
                enc, dec, p_at(it, float(p.p_final), int(p.p_ramp)), float(p.factor)
            )
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"dinomaly: loss is {value} at iteration {it}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, float(p.grad_clip))
            opt.step()
            period_loss, period_steps = period_loss + value, period_steps + 1
            bar.update(1)
            done = it + 1
            if done % int(p.eval_every) and done != total:
                continue
            val = float(val_fn(net, info, device)) if val_fn is not None else None
            net.train()
            if val is not None and (best["score"] is None or val > best["score"]):
                best = {"score": val, "iteration": done, "weights": net.trainable_state()}
            rows.append(
                {
                    "epoch": len(rows),
                    "steps": done,
                    "train_loss": period_loss / period_steps,
                    "val_score": val,
                    "lr": lr,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
            log.info(
                "dinomaly: iteration %d/%d loss %.5f%s",
                done, total, rows[-1]["train_loss"],
                "" if val is None else f" val AUROC {val:.4f}",
            )  # fmt: skip
            period_loss, period_steps, started = 0.0, 0, time.perf_counter()
            if ckpt_path is not None and done != total:
                state = {
                    "identity": identity,
                    "iteration": done,
                    "weights": net.trainable_state(),
                    "optimizer": opt.state_dict(),
                    "rows": rows,
                    "best": best,
                }
                save_torch(ckpt_path, state)
    net.eval()
    selects = val_fn is not None
    weights = best["weights"] if selects else net.trainable_state()
    if resume_dir is not None:
        import shutil

        shutil.rmtree(resume_dir, ignore_errors=True)
    return {
        "weights": weights,
        "rows": rows,
        "selection": "val" if selects else "last",
        "best_iteration": best["iteration"] if selects else total,
        "best_val_auroc": best["score"],
        "iterations": total,
        "resumed_from_iteration": resumed,
    }


def write_log(target: Path, rows: Sequence[dict]) -> None:
    """The training loop's ``loss_log.csv`` columns (one row per ``eval_every`` period)."""
    columns = ["epoch", "steps", "train_loss", "val_score", "lr", "seconds"]
    with atomic_path(target) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(
                    ["" if row[c] is None else repr(row[c]) if isinstance(row[c], float)
                     else row[c] for c in columns]
                )  # fmt: skip
