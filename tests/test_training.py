"""The shared training loop: resume is bit-exact, stale state is never reused, outputs atomic."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from iadbench.errors import ConfigError
from iadbench.training import (
    TrainConfig,
    load_weights,
    params_hash,
    resume_dir_for,
    train_model,
)
from iadbench.training.optim import build_optimizer

STEPS_PER_EPOCH = 8  # 64 samples, batch 8
CFG = TrainConfig(epochs=3, batch_size=8, lr=1e-2, seed=3)


class Interrupt(RuntimeError):
    """Stands in for a killed job."""


def make_model(hidden: int = 16, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # the caller seeds the model initialisation
    # Dropout makes the result depend on the loop's per-epoch reseeding after a resume.
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 1))


def make_data() -> TensorDataset:
    g = torch.Generator().manual_seed(123)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(64, generator=g)
    return TensorDataset(x, y)


def mse(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x).squeeze(1), y)


def run(tmp: Path, name: str, cfg=CFG, resume: Path | None = None, phash="h", **kw) -> dict:
    """One training run of the tiny MLP into ``tmp/name`` (a fresh seeded model unless given)."""
    model = kw.pop("model") if "model" in kw else make_model()
    return train_model(model, make_data(), mse, cfg, tmp / name, resume, params_hash=phash, **kw)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row.pop("seconds")  # wall time is the one column allowed to differ
    return rows


def scripted(*scores: float):
    """A val_fn returning the given scores in turn."""
    it = iter(scores)
    return lambda model: next(it)


def interrupt_after(n: int, seen: list[int]):
    def on_step(step: int) -> None:
        seen.append(step)
        if step == n:
            raise Interrupt(f"killed after step {step}")

    return on_step


def test_interrupted_run_resumes_to_identical_weights(tmp_path: Path, caplog) -> None:
    # cosine + Adam: the scheduler and optimiser state must both survive the resume
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, seed=3, schedule="cosine")
    # epoch 0 scores best, so best.pt after the resume must come from the checkpoint
    ref = run(
        tmp_path, "ref", cfg=cfg, resume=tmp_path / "resume_ref", val_fn=scripted(0.9, 0.1, 0.5)
    )
    assert ref["resumed_from_epoch"] is None
    assert ref["steps"] == 3 * STEPS_PER_EPOCH

    resume = tmp_path / "resume"
    kill_at = STEPS_PER_EPOCH + 4  # middle of the second epoch
    with pytest.raises(Interrupt):
        run(
            tmp_path,
            "b",
            cfg=cfg,
            resume=resume,
            val_fn=scripted(0.9),
            on_step=interrupt_after(kill_at, []),
        )
    assert (resume / "checkpoint.pt").is_file()
    assert not (tmp_path / "b" / "last.pt").exists()

    seen: list[int] = []
    with caplog.at_level(logging.INFO, logger="iadbench.training"):
        summary = run(
            tmp_path, "b", cfg=cfg, resume=resume, val_fn=scripted(0.1, 0.5), on_step=seen.append
        )
    assert summary["resumed_from_epoch"] == 1
    assert seen[0] == STEPS_PER_EPOCH + 1  # epoch 0 was not redone
    assert summary["steps"] == ref["steps"]
    assert any("resuming" in r.message and "epoch 1" in r.message for r in caplog.records)
    for name in ("last.pt", "best.pt"):
        assert_same(weights(tmp_path / "ref" / name), weights(tmp_path / "b" / name))
    assert summary["best_epoch"] == ref["best_epoch"] == 0
    assert read_log(tmp_path / "ref" / "loss_log.csv") == read_log(tmp_path / "b" / "loss_log.csv")
    assert summary["final_loss"] == ref["final_loss"]
    assert not resume.exists()
    assert not (tmp_path / "resume_ref").exists()


def test_other_params_hash_starts_fresh(tmp_path: Path, caplog) -> None:
    run(tmp_path, "fresh")
    resume = tmp_path / "resume"
    with pytest.raises(Interrupt):
        run(tmp_path, "b", resume=resume, phash="old", on_step=interrupt_after(12, []))

    seen: list[int] = []
    with caplog.at_level(logging.WARNING, logger="iadbench.training"):
        summary = run(tmp_path, "b", resume=resume, phash="new", on_step=seen.append)
    assert summary["resumed_from_epoch"] is None
    assert summary["params_hash"] == "new"
    assert seen[0] == 1
    assert any("params_hash" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    assert_same(weights(tmp_path / "fresh" / "last.pt"), weights(tmp_path / "b" / "last.pt"))


def test_same_hash_but_changed_config_starts_fresh(tmp_path: Path) -> None:
    resume = tmp_path / "resume"
    stale = TrainConfig(epochs=3, batch_size=8, lr=0.5, seed=3)
    with pytest.raises(Interrupt):
        run(tmp_path, "b", cfg=stale, resume=resume, on_step=interrupt_after(12, []))
    summary = run(tmp_path, "b", resume=resume)
    run(tmp_path, "fresh")
    assert summary["resumed_from_epoch"] is None
    assert_same(weights(tmp_path / "fresh" / "last.pt"), weights(tmp_path / "b" / "last.pt"))


def test_corrupt_checkpoint_is_discarded(tmp_path: Path, caplog) -> None:
    resume = tmp_path / "resume"
    resume.mkdir()
    (resume / "checkpoint.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with caplog.at_level(logging.WARNING, logger="iadbench.training"):
        summary = run(tmp_path, "b", resume=resume)
    assert summary["resumed_from_epoch"] is None
    assert any("discarding" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    run(tmp_path, "fresh")
    assert_same(weights(tmp_path / "fresh" / "last.pt"), weights(tmp_path / "b" / "last.pt"))
    assert not resume.exists()


def test_checkpoint_of_another_model_is_discarded_without_partial_load(tmp_path: Path) -> None:
    resume = tmp_path / "resume"
    with pytest.raises(Interrupt):  # same hash, different architecture: restore fails midway
        run(
            tmp_path,
            "b",
            resume=resume,
            model=make_model(hidden=8),
            on_step=interrupt_after(12, []),
        )
    summary = run(tmp_path, "b", resume=resume)
    run(tmp_path, "fresh")
    assert summary["resumed_from_epoch"] is None
    assert_same(weights(tmp_path / "fresh" / "last.pt"), weights(tmp_path / "b" / "last.pt"))


def test_seed_determines_weights(tmp_path: Path) -> None:
    run(tmp_path, "a")
    run(tmp_path, "b")
    run(tmp_path, "c", cfg=TrainConfig(epochs=3, batch_size=8, lr=1e-2, seed=4))
    a, b, c = (weights(tmp_path / n / "last.pt") for n in "abc")
    assert_same(a, b)
    assert differs(a, c)
    assert differs(a, dict(make_model().state_dict()))  # training changed something


def test_val_fn_selects_best_epoch(tmp_path: Path) -> None:
    scores = iter([0.1, 0.9, 0.5])
    snapshots: list[dict[str, torch.Tensor]] = []
    modes: list[tuple[bool, bool]] = []

    def val_fn(model: nn.Module) -> float:
        modes.append((model.training, torch.is_grad_enabled()))
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    summary = run(tmp_path, "v", val_fn=val_fn)
    out = tmp_path / "v"
    assert summary["selection"] == "val"
    assert summary["best_epoch"] == 1
    assert summary["best_score"] == 0.9
    assert modes == [(False, False)] * 3
    best = weights(out / "best.pt")
    assert_same(best, snapshots[1])
    assert differs(best, weights(out / "last.pt"))
    assert_same(weights(out / "last.pt"), snapshots[2])
    assert [r["val_score"] for r in read_log(out / "loss_log.csv")] == ["0.1", "0.9", "0.5"]

    model = load_weights(make_model(), out / "best.pt", "cpu")
    assert_same(dict(model.state_dict()), snapshots[1])


def test_without_val_fn_no_best(tmp_path: Path) -> None:
    summary = run(tmp_path, "n")
    out = tmp_path / "n"
    assert summary["selection"] == "last"
    assert summary["best_epoch"] is None
    assert not (out / "best.pt").exists()
    rows = read_log(out / "loss_log.csv")
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert all(r["val_score"] == "" and r["steps"] == str(STEPS_PER_EPOCH) for r in rows)
    assert float(rows[-1]["train_loss"]) == summary["final_loss"]


def test_cosine_schedule_anneals_to_zero(tmp_path: Path) -> None:
    cfg = TrainConfig.from_config({"epochs": 3, "batch_size": 8, "lr": 0.1, "schedule": "cosine"})
    run(tmp_path, "cos", cfg=cfg)
    lrs = [float(r["lr"]) for r in read_log(tmp_path / "cos" / "loss_log.csv")]
    total = 3 * STEPS_PER_EPOCH
    # lr of each epoch's last step: 0.1 * (1 + cos(pi * s / T)) / 2 with s = steps done before it
    expected = [0.05 * (1 + math.cos(math.pi * (8 * (e + 1) - 1) / total)) for e in range(3)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert lrs[-1] < 0.01 * 0.1  # ~0 at the final step: under 1% of the base lr

    run(tmp_path, "const", cfg=TrainConfig(epochs=3, batch_size=8, lr=0.1))
    assert {float(r["lr"]) for r in read_log(tmp_path / "const" / "loss_log.csv")} == {0.1}


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"schedule": "step"}, "schedule"),
        ({"lr": 0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"amp": "yes"}, "amp"),
    ],
)
def test_bad_config_names_the_key(cfg: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        TrainConfig.from_config(cfg)


def test_config_ignores_unknown_keys_and_normalises() -> None:
    cfg = TrainConfig.from_config(
        {"epochs": 5, "lr": "1e-3", "optimizer": "AdamW", "backbone": "wrn50", "amp": False}
    )
    assert cfg == TrainConfig(epochs=5, lr=1e-3, optimizer="adamw", amp=False)
    assert TrainConfig.from_config(None) == TrainConfig()
    with pytest.raises(ConfigError):
        TrainConfig.from_config(["epochs", 3])


def test_epoch_rng_and_shuffle_come_from_seed_and_epoch(tmp_path: Path) -> None:
    def record(draws: list[float], firsts: list[torch.Tensor]):
        def loss_fn(model: nn.Module, batch) -> torch.Tensor:
            draws.append(float(torch.rand(())))  # the global torch RNG, as dropout sees it
            firsts.append(batch[0][0].clone())
            return mse(model, batch)

        return loss_fn

    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        draws: list[float] = []
        firsts: list[torch.Tensor] = []
        cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, seed=seed)
        train_model(
            make_model(),
            make_data(),
            record(draws, firsts),
            cfg,
            tmp_path / name,
            None,
            params_hash="h",
        )
        runs[name] = (draws, firsts)
    (da, fa), (db, fb), (dc, fc) = runs["a"], runs["b"], runs["c"]
    assert da == db and all(torch.equal(x, y) for x, y in zip(fa, fb))
    assert all(x != y for x, y in zip(da, dc))  # torch is reseeded from cfg.seed
    epoch_starts = [da[e * STEPS_PER_EPOCH] for e in range(3)]
    assert len(set(epoch_starts)) == 3  # ... and from the epoch
    assert not torch.equal(fa[0], fa[STEPS_PER_EPOCH])  # each epoch has its own order
    assert not torch.equal(fa[0], fc[0])


def test_optimizer_choice() -> None:
    model = make_model()
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9
    assert sgd.param_groups[0]["weight_decay"] == 1e-4
    assert type(build_optimizer(model, TrainConfig(optimizer="adam"))) is torch.optim.Adam
    assert isinstance(build_optimizer(model, TrainConfig(optimizer="adamw")), torch.optim.AdamW)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_optimizers_train(tmp_path: Path, optimizer: str) -> None:
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, optimizer=optimizer, weight_decay=1e-4)
    summary = run(tmp_path, optimizer, cfg=cfg)
    rows = read_log(tmp_path / optimizer / "loss_log.csv")
    assert math.isfinite(summary["final_loss"])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_nan_loss_raises_and_writes_nothing(tmp_path: Path) -> None:
    calls = {"n": 0}

    def bad_loss(model: nn.Module, batch) -> torch.Tensor:
        calls["n"] += 1
        loss = mse(model, batch)
        return loss * float("nan") if calls["n"] == 11 else loss

    out = tmp_path / "nan"
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 11"):
        train_model(make_model(), make_data(), bad_loss, CFG, out, None, params_hash="h")
    assert not (out / "last.pt").exists()
    assert not (out / "loss_log.csv").exists()


def test_no_temp_files_left(tmp_path: Path) -> None:
    run(tmp_path, "o", resume=tmp_path / "r" / "abc", val_fn=lambda m: 0.0)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "best.pt",
        "last.pt",
        "loss_log.csv",
        "summary.json",
    ]
    assert list((tmp_path / "r").iterdir()) == []


def test_resume_dir_for_and_params_hash(tmp_path: Path) -> None:
    params = {"lr": 0.1, "layers": [1, 2], "path": tmp_path}
    h = params_hash(params)
    assert len(h) == 16 and int(h, 16) >= 0
    assert params_hash({"path": tmp_path, "layers": [1, 2], "lr": 0.1}) == h  # key order
    assert params_hash({**params, "lr": 0.2}) != h
    assert resume_dir_for(tmp_path, "gate", "bottle", params=params) == Path(
        tmp_path, "gate", "bottle", h
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_run(tmp_path: Path) -> None:
    resume = tmp_path / "resume"
    with pytest.raises(Interrupt):
        run(tmp_path, "g", resume=resume, device="cuda", on_step=interrupt_after(12, []))
    summary = run(tmp_path, "g", resume=resume, device="cuda")
    assert summary["resumed_from_epoch"] == 1
    assert math.isfinite(summary["final_loss"])
    model = load_weights(make_model(), tmp_path / "g" / "last.pt", "cpu")
    assert next(model.parameters()).device.type == "cpu"
