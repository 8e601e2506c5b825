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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from iadbench.io import atomic_path, save_json
from iadbench.progress import Progress
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


@dataclass(frozen=True)
class _Plan:
    """What a call fixes before its first step: config, device, data size and identity."""

    cfg: TrainConfig
    device: torch.device
    params_hash: str
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch

    @property
    def use_amp(self) -> bool:
        return self.cfg.amp and self.device.type == "cuda"  # autocast/GradScaler never on CPU

    def autocast(self):
        """The forward pass's context: CUDA autocast under AMP, else nothing."""
        return torch.autocast(device_type="cuda") if self.use_amp else contextlib.nullcontext()

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (see :func:`_load_checkpoint`)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "params_hash": self.params_hash,
            "config": self.cfg.to_dict(),
            "steps_per_epoch": self.steps_per_epoch,
        }


class _Epoch(NamedTuple):
    """One epoch's training: its steps, mean loss, last step's lr and components' means."""

    steps: int
    train_loss: float
    lr: float
    part_means: dict[str, float]


@dataclass
class _Run:
    """Everything a checkpoint restores: optimiser, schedule, scaler, EMA, progress, best epoch."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: Ema | None
    start_epoch: int = 0
    step: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    resumed_from: int | None = None

    @classmethod
    def fresh(cls, model: torch.nn.Module, plan: _Plan) -> _Run:
        optimizer = build_optimizer(model, plan.cfg)
        scheduler = build_scheduler(optimizer, plan.cfg, plan.total_steps)
        scaler = torch.amp.GradScaler("cuda", enabled=plan.use_amp)
        ema = Ema(model, plan.cfg.ema) if plan.cfg.ema is not None else None
        return cls(optimizer, scheduler, scaler, ema)

    def restore(self, model: torch.nn.Module, ckpt: dict[str, Any]) -> None:
        """Load ``ckpt`` into ``model`` and this run; may fail part-way (see :func:`_resumed`)."""
        model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:  # empty when saved by a disabled (CPU) scaler
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.start_epoch, self.step = int(ckpt["epoch"]) + 1, int(ckpt["step"])
        self.rows = list(ckpt["rows"])
        self.best_score, self.best_epoch = ckpt["best_score"], ckpt["best_epoch"]
        self.best_state = ckpt["best_state"]
        self.resumed_from = self.start_epoch

    def checkpoint(self, model: torch.nn.Module, epoch: int, plan: _Plan) -> dict[str, Any]:
        """The complete state after ``epoch``, as :meth:`restore` reads it."""
        return {
            **plan.identity(),
            "epoch": epoch,
            "step": self.step,
            "model": cpu_state(model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rows": self.rows,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }


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


def _clear_outputs(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` without the files of a previous run (a stale best.pt must not stay)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_NAMES:
        (out_dir / name).unlink(missing_ok=True)
    return out_dir


def _resumed(model: torch.nn.Module, plan: _Plan, ckpt_path: Path | None, resume_dir: Any) -> _Run:
    """A fresh run, or the one checkpointed at ``ckpt_path`` when it belongs to this call.

    A checkpoint that fails to load part-way is discarded and ``model`` gets its initial
    weights back, so nothing of it leaks into the fresh run.
    """
    init_state = cpu_state(model)
    run = _Run.fresh(model, plan)
    if ckpt_path is None or not ckpt_path.exists():
        return run
    ckpt = _load_checkpoint(ckpt_path, plan.params_hash, plan.cfg, plan.steps_per_epoch)
    if ckpt is None:
        return run
    try:
        run.restore(model, ckpt)
    except Exception as exc:  # shape mismatch, missing key...: partial load undone here
        _discard(ckpt_path, f"does not fit this model/optimiser ({exc})")
        model.load_state_dict(init_state)
        return _Run.fresh(model, plan)
    log.info("resuming training in %s from epoch %d", resume_dir, run.resumed_from)
    return run


def _step_loss(
    model: torch.nn.Module, batch: Any, loss_fn: LossFn, plan: _Plan
) -> tuple[torch.Tensor, dict[str, float]]:
    """The batch's scalar loss and its named components' values (forward pass only)."""
    with plan.autocast():
        loss = loss_fn(model, batch)
    parts: dict[str, float] = {}
    if isinstance(loss, Mapping):
        parts = {name: float(part.detach()) for name, part in loss.items() if name != "loss"}
        loss = loss["loss"]
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError("loss_fn must return a scalar tensor")
    return loss, parts


def _optimizer_step(model: torch.nn.Module, loss: torch.Tensor, plan: _Plan, run: _Run) -> None:
    """Backward, clip (after unscaling), step, update the EMA and advance the schedule."""
    run.scaler.scale(loss).backward()
    if plan.cfg.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), plan.cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update(model)
    with warnings.catch_warnings():
        # GradScaler skips steps with inf gradients; the schedule still advances.
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler")
        run.scheduler.step()


def _train_epoch(
    model: torch.nn.Module,
    data: Dataset,
    loss_fn: LossFn,
    plan: _Plan,
    run: _Run,
    epoch: int,
    after_step: Callable[[int], None],
) -> _Epoch:
    """Train one epoch (reseeded from ``(seed, epoch)``, see the module docstring)."""
    _seed_epoch(plan.cfg.seed, epoch)
    model.train()
    loss_sum, epoch_steps, lr_used = 0.0, 0, run.optimizer.param_groups[0]["lr"]
    parts_sum: dict[str, float] = {}
    for batch in _epoch_loader(data, plan.cfg, epoch, pin=plan.device.type == "cuda"):
        batch = _to_device(batch, plan.device)
        run.step += 1
        lr_used = run.optimizer.param_groups[0]["lr"]
        run.optimizer.zero_grad(set_to_none=True)
        loss, parts = _step_loss(model, batch, loss_fn, plan)
        for name, part in parts.items():
            parts_sum[name] = parts_sum.get(name, 0.0) + part
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"training loss is {value} at epoch {epoch}, step {run.step} "
                f"(step {epoch_steps + 1} of the epoch)"
            )
        _optimizer_step(model, loss, plan, run)
        loss_sum += value
        epoch_steps += 1
        after_step(run.step)
    means = {name: total / epoch_steps for name, total in parts_sum.items()}
    return _Epoch(epoch_steps, loss_sum / epoch_steps, lr_used, means)


def _validate(model: torch.nn.Module, val_fn: ValFn | None, run: _Run, epoch: int) -> float | None:
    """``val_fn``'s score of the evaluated weights; the best epoch's are kept in ``run``."""
    if val_fn is None:
        return None
    model.eval()
    with torch.no_grad(), _evaluated(model, run.ema):
        score = float(val_fn(model))
        if _better(score, run.best_score, run.best_epoch):
            run.best_score, run.best_epoch, run.best_state = score, epoch, cpu_state(model)
    model.train()
    return score


def _log_epoch(
    run: _Run,
    cfg: TrainConfig,
    epoch: int,
    trained: _Epoch,
    val_score: float | None,
    seconds: float,
) -> None:
    """Append the epoch's loss-log row to ``run`` and log it."""
    run.rows.append(
        {
            "epoch": epoch,
            "steps": trained.steps,
            "train_loss": trained.train_loss,
            "val_score": val_score,
            "lr": float(trained.lr),
            "seconds": round(seconds, 3),
            **{f"loss_{k}": v for k, v in trained.part_means.items()},
        }
    )
    log.info(
        "epoch %d/%d: train_loss=%.6g%s lr=%.3g (%.1fs)",
        epoch + 1,
        cfg.epochs,
        trained.train_loss,
        "" if val_score is None else f" val_score={val_score:.6g}",
        trained.lr,
        seconds,
    )


def _write_outputs(
    model: torch.nn.Module, out_dir: Path, plan: _Plan, run: _Run, selects: bool
) -> dict[str, Any]:
    """``last.pt`` (EMA weights when on, loaded into ``model``), ``best.pt`` when ``selects``,
    ``loss_log.csv`` and ``summary.json``; returns the summary."""
    if run.ema is not None:
        model.load_state_dict(run.ema.shadow)
    save_torch(out_dir / "last.pt", cpu_state(model))
    if selects:
        save_torch(out_dir / "best.pt", run.best_state)
    _write_loss_log(out_dir / "loss_log.csv", run.rows)
    summary = {
        "epochs": plan.cfg.epochs,
        "steps": run.step,
        "final_loss": run.rows[-1]["train_loss"],
        "best_epoch": run.best_epoch,
        "best_score": run.best_score,
        "selection": "val" if selects else "last",
        "resumed_from_epoch": run.resumed_from,
        "params_hash": plan.params_hash,
    }
    save_json(out_dir / "summary.json", summary)
    return summary


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
    out_dir = _clear_outputs(out_dir)
    if len(data) == 0:
        raise ValueError("training data set is empty")
    plan = _Plan(cfg, torch.device(device), params_hash, math.ceil(len(data) / cfg.batch_size))
    model.to(plan.device)
    ckpt_path = Path(resume_dir, CHECKPOINT_NAME) if resume_dir is not None else None
    run = _resumed(model, plan, ckpt_path, resume_dir)

    with Progress(
        total=plan.total_steps, initial=run.step, desc="train", unit="step", disable=None
    ) as bar:

        def after_step(step: int) -> None:
            bar.update(1)
            if on_step is not None:
                on_step(step)

        for epoch in range(run.start_epoch, cfg.epochs):
            started = time.perf_counter()
            trained = _train_epoch(model, data, loss_fn, plan, run, epoch, after_step)
            val_score = _validate(model, val_fn, run, epoch)
            _log_epoch(run, cfg, epoch, trained, val_score, time.perf_counter() - started)
            bar.set_postfix(epoch=epoch, loss=f"{trained.train_loss:.4g}")
            if ckpt_path is not None:
                save_torch(ckpt_path, run.checkpoint(model, epoch, plan))

    summary = _write_outputs(model, out_dir, plan, run, selects=val_fn is not None)
    if resume_dir is not None:
        shutil.rmtree(resume_dir, ignore_errors=True)
    model.eval()
    return summary
