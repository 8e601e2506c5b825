"""Causal-FiLM: FiLM identity, a causal selective scan, training that learns, VAL-only selection,
determinism, the CLIP text anchor, and the loop's EMA / warm-up / clipping (synthetic in-memory
embeddings, a tiny random CLIP)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from iadbench.clip.encoder import ClipEncoder
from iadbench.errors import CacheError, ConfigError
from iadbench.features.embeddings import INDEX_COLUMNS, EmbeddingSet
from iadbench.methods.base import MethodInputs
from iadbench.methods.causal_film.film import CausalFilmNet, Film, SensorEncoder, film_loss
from iadbench.methods.causal_film.mamba import SelectiveScanBlock
from iadbench.methods.causal_film.method import CausalFilm, Runs
from iadbench.methods.kinds import params_of
from iadbench.metrics.image import image_auroc
from iadbench.training import TrainConfig, train_model
from iadbench.training.optim import lr_factor

DIMS = {"video": 12, "audio": 10, "sensor": 6, "photo": 12}
TINY = {
    "kind": "causal_film",
    "d_model": 16,
    "heads": 2,
    "layers": 1,
    "sensor_dim": 8,
    "epochs": 2,
    "batch_size": 8,
    "lr": 0.003,
    "warmup_epochs": 0,
    "ema": None,
    "seed": 0,
}
CLIP_TINY = {"model": "clip_tiny", "weights": "random", "seed": 0}
ANCHOR = {"prompt": "a normal weld", "weight": 0.1}


def make_store(runs: list[tuple[str, int, list[np.ndarray]]], split: str, role: str, **meta):
    """An in-memory store: one index row per (run, view), tokens concatenated."""
    rows, tokens, offset = [], [], 0
    for sid, label, views in runs:
        for view, seq in enumerate(views):
            rows.append([sid, label, "good" if label == 0 else "bad", split, view, offset, len(seq),
                         0, 0])  # fmt: skip
            tokens.append(seq)
            offset += len(seq)
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    meta = {"encoder": role, "modality": role, "dim": tokens[0].shape[1], "config_hash": role,
            "rate_hz": 4.0, **meta}  # fmt: skip
    return EmbeddingSet(np.concatenate(tokens).astype(np.float16), index, meta)


def weld_split(split: str, n_good: int, n_bad: int, seed: int):
    """Runs whose photos follow from the process; an anomaly's photos come from another run."""
    rng = np.random.default_rng(seed)
    proj = np.random.default_rng(99)  # one "physics" shared by every split
    maps = {role: proj.normal(size=(3, DIMS[role])) for role in DIMS}
    by_role: dict[str, list] = {role: [] for role in DIMS}
    labels = [0] * n_good + [1] * n_bad
    for i, label in enumerate(labels):
        sid = f"{split}{i:03d}"
        a = rng.normal(size=3)
        for role, length in (("video", 8), ("audio", 10), ("sensor", 20)):
            n = length + int(rng.integers(0, 4))
            seq = a @ maps[role] + 0.1 * rng.normal(size=(n, DIMS[role]))
            if role == "sensor":
                seq = 50.0 + 10.0 * seq  # raw units: training statistics matter
            by_role[role].append((sid, label, [seq]))
        b = rng.normal(size=3) * 3 if label else a
        views = [np.log1p(np.exp(b @ maps["photo"] + 0.1 * rng.normal(size=(4, 12))))
                 for _ in range(2)]  # fmt: skip
        by_role["photo"].append((sid, label, views))
    stores = {
        role: make_store(runs, split, role, **({"layer_dims": [6, 6]} if role == "photo" else {}))
        for role, runs in by_role.items()
    }
    index = pd.DataFrame(
        {"sample_id": [r[0] for r in by_role["video"]], "label": labels, "split": split}
    )
    return index, stores


@pytest.fixture(scope="module")
def weld():
    return {
        "train": weld_split("train", 16, 0, 1),
        "val": weld_split("val", 8, 8, 2),
        "test": weld_split("test", 8, 8, 3),
    }


class Trap(dict):
    """A TEST store that fails the test if a fit so much as looks at it."""

    def __getitem__(self, key):
        raise AssertionError("a fit read the TEST embeddings")

    get = __getitem__


def fit_inputs(weld) -> MethodInputs:
    """What a fit gets: TRAIN rows, TRAIN and VAL stores (TEST's a trap), every manifest row."""
    rows = pd.concat([weld[s][0] for s in ("train", "val", "test")], ignore_index=True)
    stores = {"train": weld["train"][1], "val": weld["val"][1], "test": Trap(weld["test"][1])}
    return MethodInputs(index=weld["train"][0], rows=rows, cached={"embeddings": stores})


def fit(weld, tmp: Path, backbone=None, **overrides) -> tuple[CausalFilm, Path, dict]:
    method = CausalFilm({**TINY, **overrides}, device="cpu")
    state_dir = tmp / "state"
    inputs = dataclasses.replace(fit_inputs(weld), backbone=backbone)
    return method, state_dir, method.fit(inputs, state_dir)


def test_film_starts_as_the_identity():
    film = Film(8, 16)
    tokens, context = torch.randn(3, 5, 16), torch.randn(3, 8)
    assert torch.equal(film(tokens, context), tokens)


def test_selective_scan_runs_on_cpu_and_is_causal():
    torch.manual_seed(0)
    block = SelectiveScanBlock(8)
    x = torch.randn(2, 20, 8)
    changed = x.clone()
    changed[:, 12:] += torch.randn(2, 8, 8)
    out, out_changed = block(x), block(changed)
    assert out.shape == (2, 20, 8)
    assert torch.allclose(out[:, :12], out_changed[:, :12], atol=1e-6)
    assert not torch.allclose(out[:, 12:], out_changed[:, 12:])


@pytest.mark.parametrize("kind", ["gru", "mamba"])
def test_sensor_context_ignores_right_padding(kind):
    torch.manual_seed(0)
    encoder = SensorEncoder(6, 8, kind)
    x = torch.randn(1, 9, 6)
    padded = torch.cat([x, torch.randn(1, 4, 6)], dim=1)
    lengths = torch.tensor([9])
    assert torch.allclose(encoder(x, lengths), encoder(padded, lengths), atol=1e-6)


def test_network_shapes_and_a_few_steps_lower_the_loss(weld):
    p = params_of(TINY)
    torch.manual_seed(0)
    net = CausalFilmNet(DIMS, [6, 6], p)
    stores = weld["train"][1]
    runs = Runs(stores, weld["train"][0]["sample_id"].tolist(), {"mode": "sample", "stats": None})
    batch = runs.batch(range(8), torch.device("cpu"))
    z, z_hat = net(batch)
    assert z.shape == z_hat.shape == (8, 16)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = film_loss(*net(batch), 10.0, 1.0)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_fit_selects_on_val_never_test_and_scores_in_manifest_order(weld, tmp_path):
    method, state_dir, state = fit(weld, tmp_path)
    assert state["selection"] == "val_image_auroc" and state["best_epoch"] in range(2)
    assert state["sensor"]["mode"] == "train" and len(state["sensor"]["stats"]["mean"]) == 6
    assert json.loads((state_dir / "state.json").read_text())["n_val_runs"] == 16
    with open(state_dir / "loss_log.csv") as fh:
        log = list(csv.DictReader(fh))
    assert len(log) == 2 and all(row["val_score"] and row["train_loss"] for row in log)
    assert (state_dir / "best.pt").is_file()

    index, stores = weld["test"]
    scores, maps, extra = method.score(
        state_dir, MethodInputs(index, cached={"embeddings": stores}), (8, 8)
    )
    assert scores.dtype == np.float64 and scores.shape == (16,) and maps is None and extra == {}
    assert image_auroc(index["label"], scores) > 0.8
    # the same runs asked for in reverse order get the same scores, reversed
    backwards = index.iloc[::-1].reset_index(drop=True)
    again, _, _ = method.score(
        state_dir, MethodInputs(backwards, cached={"embeddings": stores}), (8, 8)
    )
    assert np.allclose(again, scores[::-1], atol=1e-6)


def test_a_missing_sample_or_store_is_an_error(weld, tmp_path):
    method, state_dir, _ = fit(weld, tmp_path, epochs=1)
    index, stores = weld["test"]
    extra = pd.concat([index, pd.DataFrame({"sample_id": ["ghost"], "label": [0]})])
    with pytest.raises(CacheError, match="lack 1 sample"):
        method.score(state_dir, MethodInputs(extra, cached={"embeddings": stores}), (8, 8))
    partial = {k: v for k, v in stores.items() if k != "sensor"}
    with pytest.raises(CacheError, match="sensor"):
        method.score(state_dir, MethodInputs(index, cached={"embeddings": partial}), (8, 8))


def test_fit_refuses_anomalous_train_runs_and_a_one_class_val(weld):
    inputs = fit_inputs(weld)
    method = CausalFilm(TINY, device="cpu")
    bad_train = MethodInputs(inputs.index.assign(label=1), rows=inputs.rows, cached=inputs.cached)
    with pytest.raises(ValueError, match="normal runs only"):
        method.fit(bad_train, Path("unused"))
    one_class = inputs.rows.assign(label=0)
    with pytest.raises(ValueError, match="VAL"):
        method.fit(MethodInputs(inputs.index, rows=one_class, cached=inputs.cached), Path("x"))


def test_same_seed_same_state_and_keys_change_the_trajectory(weld, tmp_path):
    def run(name: str, **overrides):
        _, state_dir, _ = fit(weld, tmp_path / name, **overrides)
        weights = torch.load(state_dir / "last.pt", weights_only=True)
        return (state_dir / "loss_log.csv").read_text().splitlines(), weights

    def loss_column(log):
        return [line.split(",")[3] for line in log[1:]]  # train_loss, val_score

    base_log, base = run("a")
    again_log, again = run("b")
    assert loss_column(base_log) == loss_column(again_log)
    assert all(torch.equal(base[k], again[k]) for k in base)
    for overrides in ({"warmup_epochs": 1}, {"ema": 0.9}, {"grad_clip": 0.01}, {"seed": 1}):
        _, other = run("-".join(overrides), **overrides)
        assert any(not torch.equal(base[k], other[k]) for k in base), overrides


def test_sensor_norm_and_mamba_are_used(weld, tmp_path):
    index, stores = weld["test"]
    inputs = MethodInputs(index, cached={"embeddings": stores})
    results = []
    for overrides in ({}, {"sensor_norm": "sample"}, {"sensor_encoder": "mamba"}):
        method, state_dir, state = fit(weld, tmp_path / str(len(results)), epochs=1, **overrides)
        results.append(method.score(state_dir, inputs, (8, 8))[0])
    assert not np.allclose(results[0], results[1]) and not np.allclose(results[0], results[2])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sensor_encoder": "lstm"}, "sensor_encoder"),
        ({"sensor_norm": "global"}, "sensor_norm"),
        ({"d_model": 10, "heads": 4}, "multiple of heads"),
        ({"encoders": {"video": "v"}}, r"encoders: '\w+' is a required property"),
        ({"ema": 1.0}, "ema"),
        ({"score_top_k": 0}, "score_top_k"),
        ({"warmup_epochs": 5, "epochs": 3}, "warmup_epochs"),
        ({"text_anchor": 0.1}, r"text_anchor: 0.1 is not of type .*\{prompt, weight\} or null"),
        ({"text_anchor": {"prompt": "a normal weld"}}, r"text_anchor: 'weight' is a required"),
        ({"text_anchor": {**ANCHOR, "temperature": 1}}, r"text_anchor: .*'temperature' was unexp"),
        ({"text_anchor": {**ANCHOR, "prompt": "  "}}, r"text_anchor\.prompt: '  ' does not match"),
        ({"text_anchor": {**ANCHOR, "prompt": 3}}, r"text_anchor\.prompt: 3 is not of type"),
        ({"text_anchor": {**ANCHOR, "weight": 0}}, r"text_anchor\.weight: 0 .*allowed: number > 0"),
        ({"text_anchor": {**ANCHOR, "weight": True}}, r"text_anchor\.weight: True is not of type"),
        ({"text_anchor": {**ANCHOR, "weight": "0.1"}}, r"text_anchor\.weight: '0.1' is not of"),
        ({"text_anchor_weight": 0.1}, "unknown key"),
    ],
)
def test_bad_parameters_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        params_of({**TINY, **change})


def test_text_anchor_trains_with_its_own_loss_column_and_scores_without_it(
    weld, tmp_path, monkeypatch
):
    calls = []
    encode_text = ClipEncoder.encode_text

    def counted(self, sentences, batch_size=256):
        calls.append(list(sentences))
        return encode_text(self, sentences, batch_size)

    monkeypatch.setattr(ClipEncoder, "encode_text", counted)
    _, plain_dir, _ = fit(weld, tmp_path / "plain")
    method, state_dir, state = fit(weld, tmp_path / "anchor", CLIP_TINY, text_anchor=ANCHOR)
    assert calls == [["a normal weld"]]  # once per fit, not per step
    assert state["text_anchor"] == {
        **ANCHOR, "clip": "clip_tiny:random:seed=0", "dim": 32}  # fmt: skip
    assert json.loads((state_dir / "state.json").read_text())["text_anchor"] == state["text_anchor"]
    with open(state_dir / "loss_log.csv") as fh:
        log = list(csv.DictReader(fh))
    assert all(0.0 <= float(row["loss_text"]) <= 2.0 for row in log)
    with open(plain_dir / "loss_log.csv") as fh:
        assert "loss_text" not in next(csv.DictReader(fh))

    plain = torch.load(plain_dir / "last.pt", weights_only=True)
    anchored = torch.load(state_dir / "last.pt", weights_only=True)
    assert set(anchored) - set(plain) == {"to_text.weight", "to_text.bias"}
    assert anchored["to_text.weight"].shape == (32, 16)
    assert any(not torch.equal(plain[k], anchored[k]) for k in plain)

    index, stores = weld["test"]
    scores, _, _ = method.score(
        state_dir, MethodInputs(index, cached={"embeddings": stores}), (8, 8)
    )
    assert scores.shape == (16,) and np.isfinite(scores).all()
    best = torch.load(state_dir / "best.pt", weights_only=True)
    torch.save({**best, "to_text.weight": torch.randn(32, 16)}, state_dir / "best.pt")
    again, _, _ = method.score(
        state_dir, MethodInputs(index, cached={"embeddings": stores}), (8, 8)
    )
    assert np.array_equal(again, scores)  # the score has no text term
    row = method.params.describe(state)
    assert row["text_anchor"] == "0.1:a normal weld"
    assert row["text_anchor_clip"] == "clip_tiny:random:seed=0"
    assert params_of(TINY).describe({})["text_anchor"] is None


def test_a_text_anchor_without_a_clip_backbone_is_refused_by_the_fit(weld, tmp_path):
    with pytest.raises(ConfigError, match="text_anchor needs backbone"):
        fit(weld, tmp_path / "none", text_anchor=ANCHOR, epochs=1)
    lite = {"model": "efficientnet_lite0", "weights": "random"}
    with pytest.raises(ConfigError, match="not a CLIP"):
        fit(weld, tmp_path / "cnn", lite, text_anchor=ANCHOR, epochs=1)


def test_needs_name_the_embeddings_per_role():
    needs = params_of({"kind": "causal_film", "encoders": {
        "video": "vjepa", "audio": "ast", "sensor": "raw", "photo": "dino"}}).needs()  # fmt: skip
    assert needs.training == "per_category" and not needs.maps
    assert needs.embeddings == (("video", "vjepa"), ("audio", "ast"), ("sensor", "raw"),
                                ("photo", "dino"))  # fmt: skip
    assert needs.inputs == frozenset({"video", "audio", "sensor", "images"})


# --- the shared loop's warm-up, EMA and clipping ---------------------------------------------


def test_warmup_ramps_linearly_then_cosine_anneals():
    factors = [lr_factor("cosine", s, 10, warmup_steps=4) for s in range(10)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[4:] == sorted(factors[4:], reverse=True)
    assert lr_factor("constant", 1, 10, 4) == 0.5 and lr_factor("constant", 7, 10, 4) == 1.0
    assert lr_factor("cosine", 3, 10) == lr_factor("cosine", 3, 10, 0)


def _tiny_run(tmp: Path, name: str, cfg: TrainConfig, resume=None, on_step=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g)
    data = TensorDataset(x, x.sum(1, keepdim=True))

    def loss(m, batch):
        return nn.functional.mse_loss(m(batch[0]), batch[1])

    def val(m) -> float:
        return -float(loss(m, data.tensors))

    summary = train_model(
        model, data, loss, cfg, tmp / name, resume, params_hash="h", val_fn=val, on_step=on_step
    )
    return summary, torch.load(tmp / name / "last.pt", weights_only=True)


def test_ema_weights_are_validated_saved_and_resumed_exactly(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.05, seed=2, ema=0.9)
    _, plain = _tiny_run(tmp_path, "plain", TrainConfig(epochs=3, batch_size=8, lr=0.05, seed=2))
    _, averaged = _tiny_run(tmp_path, "ema", cfg)
    assert any(not torch.equal(plain[k], averaged[k]) for k in plain)

    class Stop(RuntimeError):
        pass

    def stop_at(step):
        if step == 6:
            raise Stop

    resume = tmp_path / "resume"
    with pytest.raises(Stop):
        _tiny_run(tmp_path, "resumed", cfg, resume=resume, on_step=stop_at)
    summary, resumed = _tiny_run(tmp_path, "resumed", cfg, resume=resume)
    assert summary["resumed_from_epoch"] == 1
    assert all(torch.equal(resumed[k], averaged[k]) for k in averaged)


@pytest.mark.parametrize(
    ("key", "value"), [("warmup_epochs", 4), ("ema", 1.0), ("ema", 0), ("grad_clip", -1.0)]
)
def test_loop_refuses_bad_warmup_ema_and_clip(key, value):
    with pytest.raises(ConfigError, match=key):
        TrainConfig(epochs=3, **{key: value})
