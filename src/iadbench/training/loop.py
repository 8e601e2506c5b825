"""The one training loop every trained method uses: seeded, resumable, atomically written.

Reproducibility contract (what makes an interrupted-and-resumed run bit-identical to an
uninterrupted one on CPU):

* The caller seeds the model's initialisation (e.g. ``torch.manual_seed(cfg.seed)`` right
  before building the model). The loop snapshots those initial weights and falls back to them
  whenever a checkpoint has to be discarded.
* At the start of every epoch the loop reseeds torch (plus ``random`` and ``numpy``, for dataset
  augmentations) from ``(seed, epoch)``, and draws that epoch's shuffle order from a fresh
  ``torch.Generator`` seeded the same way. Nothing depends on how many epochs ran before in this
  process, so dropout and shuffling after a resume match the uninterrupted run.
* At the end of every epoch the complete state (model, optimiser, scheduler, GradScaler, step
  count, loss log, best weights) is checkpointed atomically. A resume restarts at the epoch
  after the last checkpoint; a partially run epoch is simply redone.

On CUDA, bit-exactness additionally needs deterministic kernels, which this loop does not force.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from iadbench.io import atomic_path, save_json
from iadbench.training.checkpoint import CHECKPOINT_NAME, cpu_state, save_torch
from iadbench.training.config import TrainConfig
from iadbench.training.ema import Ema
from iadbench.training.optim import build_optimizer, build_scheduler

log = logging.getLogger("iadbench.training")

LOG_COLUMNS = ("epoch", "steps", "train_loss", "val_score", "lr", "seconds")
# Everything train_model writes into out_dir; stale copies are removed before a run starts.
OUTPUT_NAMES = ("last.pt", "best.pt", "loss_log.csv", "summary.json")
CHECKPOINT_FORMAT = 1

# A loss function returns the scalar loss, or a mapping with it under "loss" plus named scalar
# components (e.g. focal, dice) whose per-epoch means become ``loss_<name>`` log columns.
LossFn = Callable[[torch.nn.Module, Any], torch.Tensor | Mapping[str, torch.Tensor]]
ValFn = Callable[[torch.nn.Module], float]


def _derive_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed for one (seed, epoch, stream); hashing keeps streams uncorrelated."""
    digest = hashlib.sha256(f"iadbench.training:{stream}:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _seed_epoch(seed: int, epoch: int) -> None:
    torch.manual_seed(_derive_seed(seed, epoch, "torch"))
    random.seed(_derive_seed(seed, epoch, "python"))
    np.random.seed(_derive_seed(seed, epoch, "numpy") % 2**32)


def _epoch_loader(data: Dataset, cfg: TrainConfig, epoch: int, pin: bool) -> DataLoader:
    generator = torch.Generator()
    generator.manual_seed(_derive_seed(cfg.seed, epoch, "shuffle"))
    return DataLoader(
        data,
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=0,
        generator=generator,
        pin_memory=pin,
    )


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside a (nested) batch to ``device``; other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _fresh_state(
    model: torch.nn.Module, cfg: TrainConfig, total_steps: int, use_amp: bool
) -> tuple[
    torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler, Ema | None
]:
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ema = Ema(model, cfg.ema) if cfg.ema is not None else None
    return optimizer, scheduler, scaler, ema


def _evaluated(model: torch.nn.Module, ema: Ema | None):
    """Context in which ``model`` holds the weights that are validated (EMA's when on)."""
    return ema.applied(model) if ema is not None else contextlib.nullcontext()


def _better(score: float, best_score: float | None, best_epoch: int | None) -> bool:
    """Higher is better; the first epoch always counts; NaN never beats anything real."""
    if best_epoch is None or best_score is None:
        return True
    if math.isnan(score):
        return False
    return math.isnan(best_score) or score > best_score


def _write_loss_log(target: Path, rows: list[dict[str, Any]]) -> None:
    """CSV with full float precision (``repr``) so logs of two runs can be compared exactly."""
    columns = list(LOG_COLUMNS) + [k for k in rows[0] if k not in LOG_COLUMNS]

    def cell(value: Any) -> str:
        if value is None:
            return ""
        return repr(value) if isinstance(value, float) else str(value)

    with atomic_path(target) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([cell(row.get(c)) for c in columns])


def _discard(path: Path, why: str) -> None:
    log.warning("discarding resume checkpoint %s: %s; starting fresh", path, why)
    path.unlink(missing_ok=True)


def _load_checkpoint(
    path: Path, params_hash: str, cfg: TrainConfig, steps_per_epoch: int
) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it is readable and belongs to exactly this run, else None."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, foreign pickle...
        _discard(path, f"cannot be read ({type(exc).__name__}: {exc})")
        return None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        _discard(path, "not a checkpoint written by this version of the training loop")
        return None
    if ckpt.get("params_hash") != params_hash:
        _discard(
            path, f"params_hash {ckpt.get('params_hash')!r} != {params_hash!r} (config changed)"
        )
        return None
    if ckpt.get("config") != cfg.to_dict() or ckpt.get("steps_per_epoch") != steps_per_epoch:
        _discard(path, "training config or data size differ from the checkpointed run")
        return None
    return ckpt


def train_model(
    model: torch.nn.Module,
    data: Dataset,
    loss_fn: LossFn,
    cfg: TrainConfig | Mapping[str, Any],
    out_dir: str | os.PathLike,
    resume_dir: str | os.PathLike | None,
    *,
    device: str | torch.device = "cpu",
    params_hash: str,
    val_fn: ValFn | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``data`` and write ``last.pt``, ``best.pt``, ``loss_log.csv`` and
    ``summary.json`` to ``out_dir``; return the summary.

    Seed the model initialisation before calling (see the module docstring). ``loss_fn(model,
    batch)`` returns a scalar tensor (or ``{"loss": total, <name>: component, ...}``, whose
    components' epoch means are logged as ``loss_<name>`` columns); the batch's tensors are
    already on ``device``. ``val_fn(model)`` (higher is better) runs after each epoch in eval
    mode under ``no_grad``; with it the best epoch's weights go to ``best.pt``
    (``selection="val"``), without it there is no ``best.pt``, ``best_epoch`` is None and
    ``selection="last"``. Epochs are numbered from 0. With ``cfg.ema`` the averaged weights are
    what ``val_fn`` sees and what ``best.pt`` and ``last.pt`` hold; ``cfg.grad_clip`` clips the
    global gradient norm (after unscaling, under AMP) before each step.

    ``resume_dir`` (see ``resume_dir_for``; None disables resuming) holds ``checkpoint.pt``,
    written after every epoch; a checkpoint with the same ``params_hash`` (and config) is resumed
    from the following epoch, anything else is discarded with a warning. The directory is
    deleted after success. ``on_step(step)`` is called after every optimiser step (1-based global
    count). A non-finite loss raises ``FloatingPointError`` before any output is written. The
    model is left on ``device``, in eval mode, holding the last epoch's weights (averaged ones
    with EMA).
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_config(cfg)
    device = torch.device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_NAMES:  # a reused directory must not keep a previous run's best.pt
        (out_dir / name).unlink(missing_ok=True)

    n_samples = len(data)
    if n_samples == 0:
        raise ValueError("training data set is empty")
    steps_per_epoch = math.ceil(n_samples / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    use_amp = cfg.amp and device.type == "cuda"  # autocast/GradScaler never on CPU

    model.to(device)
    init_state = cpu_state(model)
    optimizer, scheduler, scaler, ema = _fresh_state(model, cfg, total_steps, use_amp)
    start_epoch, step = 0, 0
    rows: list[dict[str, Any]] = []
    best_score: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    resumed_from: int | None = None

    ckpt_path = Path(resume_dir, CHECKPOINT_NAME) if resume_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        ckpt = _load_checkpoint(ckpt_path, params_hash, cfg, steps_per_epoch)
        if ckpt is not None:
            try:
                model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
                scheduler.load_state_dict(ckpt["scheduler"])
                if ckpt["scaler"]:  # empty when saved by a disabled (CPU) scaler
                    scaler.load_state_dict(ckpt["scaler"])
                if ema is not None:
                    ema.load_state_dict(ckpt["ema"])
                start_epoch, step = int(ckpt["epoch"]) + 1, int(ckpt["step"])
                rows = list(ckpt["rows"])
                best_score, best_epoch = ckpt["best_score"], ckpt["best_epoch"]
                best_state = ckpt["best_state"]
                resumed_from = start_epoch
            except Exception as exc:  # shape mismatch, missing key...: partial load undone below
                _discard(ckpt_path, f"does not fit this model/optimiser ({exc})")
                model.load_state_dict(init_state)
                optimizer, scheduler, scaler, ema = _fresh_state(model, cfg, total_steps, use_amp)
                start_epoch, step, rows = 0, 0, []
                best_score = best_epoch = best_state = None
        if resumed_from is not None:
            log.info("resuming training in %s from epoch %d", resume_dir, resumed_from)

    autocast = (
        (lambda: torch.autocast(device_type="cuda"))
        if use_amp
        else (lambda: contextlib.nullcontext())
    )
    with tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=None) as bar:
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            _seed_epoch(cfg.seed, epoch)
            model.train()
            loss_sum, epoch_steps, lr_used = 0.0, 0, optimizer.param_groups[0]["lr"]
            parts_sum: dict[str, float] = {}
            for batch in _epoch_loader(data, cfg, epoch, pin=device.type == "cuda"):
                batch = _to_device(batch, device)
                step += 1
                lr_used = optimizer.param_groups[0]["lr"]
                optimizer.zero_grad(set_to_none=True)
                with autocast():
                    loss = loss_fn(model, batch)
                if isinstance(loss, Mapping):
                    for name, part in loss.items():
                        if name != "loss":
                            parts_sum[name] = parts_sum.get(name, 0.0) + float(part.detach())
                    loss = loss["loss"]
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise TypeError("loss_fn must return a scalar tensor")
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"training loss is {value} at epoch {epoch}, step {step} "
                        f"(step {epoch_steps + 1} of the epoch)"
                    )
                scaler.scale(loss).backward()
                if cfg.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if ema is not None:
                    ema.update(model)
                with warnings.catch_warnings():
                    # GradScaler skips steps with inf gradients; the schedule still advances.
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler")
                    scheduler.step()
                loss_sum += value
                epoch_steps += 1
                bar.update(1)
                if on_step is not None:
                    on_step(step)

            train_loss = loss_sum / epoch_steps
            val_score: float | None = None
            if val_fn is not None:
                model.eval()
                with torch.no_grad(), _evaluated(model, ema):
                    val_score = float(val_fn(model))
                    if _better(val_score, best_score, best_epoch):
                        best_score, best_epoch, best_state = val_score, epoch, cpu_state(model)
                model.train()
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "epoch": epoch,
                    "steps": epoch_steps,
                    "train_loss": train_loss,
                    "val_score": val_score,
                    "lr": float(lr_used),
                    "seconds": round(seconds, 3),
                    **{f"loss_{k}": v / epoch_steps for k, v in parts_sum.items()},
                }
            )
            bar.set_postfix(epoch=epoch, loss=f"{train_loss:.4g}")
            log.info(
                "epoch %d/%d: train_loss=%.6g%s lr=%.3g (%.1fs)",
                epoch + 1,
                cfg.epochs,
                train_loss,
                "" if val_score is None else f" val_score={val_score:.6g}",
                lr_used,
                seconds,
            )
            if ckpt_path is not None:
                save_torch(
                    ckpt_path,
                    {
                        "format": CHECKPOINT_FORMAT,
                        "params_hash": params_hash,
                        "config": cfg.to_dict(),
                        "steps_per_epoch": steps_per_epoch,
                        "epoch": epoch,
                        "step": step,
                        "model": cpu_state(model),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rows": rows,
                        "best_score": best_score,
                        "best_epoch": best_epoch,
                        "best_state": best_state,
                        "ema": ema.state_dict() if ema is not None else None,
                    },
                )

    if ema is not None:
        model.load_state_dict(ema.shadow)
    save_torch(out_dir / "last.pt", cpu_state(model))
    if val_fn is not None:
        save_torch(out_dir / "best.pt", best_state)
    _write_loss_log(out_dir / "loss_log.csv", rows)
    summary = {
        "epochs": cfg.epochs,
        "steps": step,
        "final_loss": rows[-1]["train_loss"],
        "best_epoch": best_epoch,
        "best_score": best_score,
        "selection": "val" if val_fn is not None else "last",
        "resumed_from_epoch": resumed_from,
        "params_hash": params_hash,
    }
    save_json(out_dir / "summary.json", summary)
    if resume_dir is not None:
        shutil.rmtree(resume_dir, ignore_errors=True)
    model.eval()
    return summary
