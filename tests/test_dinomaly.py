"""Dinomaly (METHODS §5.2): its formulas against hand computations, the iteration loop's resume,
the protocol (selection reads val, never test) and the multi-class DAG (one training per
dataset). Tiny random DINOv2-reg encoder (width 48, 112 px -> 8x8 grid), a few images."""

from __future__ import annotations

import math
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from test_workflow import snakemake_cmd

from iadbench.errors import ConfigError
from iadbench.methods.base import MethodInputs
from iadbench.methods.dinomaly import method as dm
from iadbench.methods.dinomaly.model import (
    LinearAttention,
    anomaly_maps,
    gaussian_kernel,
    hard_mining_loss,
    lr_at,
    p_at,
)
from iadbench.methods.kinds import params_of

TINY = {
    "kind": "dinomaly",
    "encoder": "dinov2_tiny_reg4",
    "weights": "random",
    "image_size": 112,
    "crop_size": 112,
    "eval_size": 32,
    "batch_size": 2,
    "iterations": 4,
    "eval_every": 2,
    "warmup_iters": 2,
    "seed": 3,
}


# --- formulas -----------------------------------------------------------------------------------


def test_linear_attention_equals_its_formula_on_a_small_tensor():
    torch.manual_seed(0)
    attn = LinearAttention(dim=4, heads=2, qkv_bias=True).double()
    x = torch.randn(1, 3, 4, dtype=torch.float64)
    qkv = (x[0] @ attn.qkv.weight.T + attn.qkv.bias).detach().numpy()  # (3 tokens, 12)
    q, k, v = qkv[:, :4], qkv[:, 4:8], qkv[:, 8:]

    def phi(a):
        return np.where(a > 0, a + 1.0, np.exp(a))  # ELU(a) + 1

    heads = []
    for h in range(2):
        sl = slice(2 * h, 2 * h + 2)
        out = np.zeros((3, 2))
        for s in range(3):  # out_s = sum_t (phi(q_s).phi(k_t)) v_t / sum_t phi(q_s).phi(k_t)
            w = [phi(q[s, sl]) @ phi(k[t, sl]) for t in range(3)]
            out[s] = sum(w[t] * v[t, sl] for t in range(3)) / sum(w)
        heads.append(out)
    expected = np.concatenate(heads, axis=1) @ attn.proj.weight.detach().numpy().T
    expected += attn.proj.bias.detach().numpy()
    np.testing.assert_allclose(attn(x)[0].detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_hard_mining_scales_exactly_the_easy_points_gradients_by_the_factor():
    torch.manual_seed(1)
    enc = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    dec0 = torch.randn(1, 3, 2, 2, dtype=torch.float64)

    def grad(p):
        dec = dec0.clone().requires_grad_(True)
        out = dec * 1.0  # the hook sits on this non-leaf, as on the decoder's group map
        hard_mining_loss([enc], [out], p=p, factor=0.1).backward()
        return dec.grad[0]

    plain, mined = grad(0.0), grad(0.5)  # p = 0: k = N, nothing is below the smallest
    e, d = enc[0].reshape(3, 4).numpy(), dec0[0].reshape(3, 4).numpy()
    dist = 1 - (e * d).sum(0) / np.linalg.norm(e, axis=0) / np.linalg.norm(d, axis=0)
    easy = dist < np.sort(dist)[-2]  # k = int(4 * 0.5) = 2: below the 2nd largest distance
    assert easy.sum() == 2
    expected = plain.reshape(3, 4).numpy() * np.where(easy, 0.1, 1.0)
    np.testing.assert_allclose(mined.reshape(3, 4).numpy(), expected, rtol=1e-12)
    # the loss itself: 1 - cos of the whole flattened maps
    loss = hard_mining_loss([enc], [dec0], p=0.5, factor=0.1).item()
    flat_cos = (e * d).sum() / np.linalg.norm(e) / np.linalg.norm(d)
    assert loss == pytest.approx(1 - flat_cos, rel=1e-12)


def test_p_ramps_linearly_to_p_final_over_the_ramp():
    assert p_at(0) == 0.0
    assert p_at(500) == pytest.approx(0.45)
    assert p_at(1000) == pytest.approx(0.9)
    assert p_at(7000) == pytest.approx(0.9)
    assert p_at(10, p_final=0.5, ramp=20) == pytest.approx(0.25)


def test_warm_cosine_schedule():
    warm = np.linspace(0, 2e-3, 100)  # the reference's warm-up, then cosine to 2e-4
    assert lr_at(0, 10000, 2e-3, 2e-4, 100) == 0.0
    assert lr_at(50, 10000, 2e-3, 2e-4, 100) == pytest.approx(warm[50])
    assert lr_at(100, 10000, 2e-3, 2e-4, 100) == pytest.approx(2e-3)
    mid = 2e-4 + 0.5 * 1.8e-3 * (1 + math.cos(math.pi * 0.5))
    assert lr_at(100 + 4950, 10000, 2e-3, 2e-4, 100) == pytest.approx(mid)


def test_image_score_is_the_mean_of_the_top_share_of_the_smoothed_map():
    enc = [torch.ones(1, 2, 2, 2)]
    dec = [torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, -1.0]]]])]
    kernel = torch.zeros(3, 3)
    kernel[1, 1] = 1.0  # identity smoothing: the map is the plain interpolation
    scores, maps = anomaly_maps(enc, dec, image_size=2, eval_size=2, kernel=kernel, max_ratio=0.5)
    # per position 1 - cos: three positions (1,1)·(1,1) -> 0, one (1,1)·(1,-1) -> 1
    np.testing.assert_allclose(maps[0].numpy(), [[0, 0], [0, 1]], atol=1e-7)
    assert scores.item() == pytest.approx(0.5)  # top 2 of 4 values: (1 + 0) / 2
    k = gaussian_kernel(5, 4.0)
    assert k.sum().item() == pytest.approx(1.0) and k[2, 2] == k.max()


def test_maps_are_brought_onto_the_dataset_crop():
    maps = torch.arange(16.0).reshape(1, 4, 4)
    same = dm.to_dataset_crop(maps, 0.5, 0.5, (4, 4))
    np.testing.assert_allclose(same.numpy(), maps.numpy())
    inner = dm.to_dataset_crop(maps, 1.0, 0.5, (2, 2))  # the central half of the method's crop
    np.testing.assert_allclose(inner.numpy(), maps[:, 1:3, 1:3].numpy())
    with pytest.raises(ConfigError, match="crop"):
        dm.to_dataset_crop(maps, 0.5, 0.875, (4, 4))


# --- training, resume and protocol ------------------------------------------------------------


def _images(tmp_path, split, labels, category="a"):
    rows = []
    for i, label in enumerate(labels):
        rng = np.random.default_rng(hash((category, split, i)) % 2**32)
        path = tmp_path / f"{category}_{split}_{i}.png"
        pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        if label:
            pixels[10:30, 10:30] = 255
        Image.fromarray(pixels).save(path)
        rows.append(
            {"sample_id": f"{category}/{split}/{i}", "category": category, "split": split,
             "label": int(label), "defect_type": "x" if label else "good",
             "image_path": str(path)}
        )  # fmt: skip
    return rows


def _parts(tmp_path, categories=("a", "b")):
    parts = []
    for c in categories:
        rows = pd.DataFrame(
            _images(tmp_path, "train", [0, 0, 0], c)
            + _images(tmp_path, "val", [0, 1], c)
            + _images(tmp_path, "test", [0, 1], c)
        )
        train = rows[rows["split"] == "train"].reset_index(drop=True)
        parts.append(MethodInputs(index=train, rows=rows, dataset={"resize": 112, "crop": 112}))
    return parts


def test_a_killed_training_resumes_to_identical_weights(tmp_path, monkeypatch):
    method = dm.DinomalyMethod(TINY, device="cpu")
    whole = method.train(_parts(tmp_path), tmp_path / "whole", tmp_path / "resume_a")
    reference = torch.load(tmp_path / "whole" / dm.WEIGHTS, weights_only=True)

    calls = {"n": 0}
    real = dm.hard_mining_loss

    def dies_at_step_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # iteration index 3: after the checkpoint at 2
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(dm, "hard_mining_loss", dies_at_step_3)
    resume = tmp_path / "resume_b"
    with pytest.raises(RuntimeError, match="killed"):
        method.train(_parts(tmp_path), tmp_path / "killed", resume)
    assert (resume / "checkpoint.pt").is_file()
    monkeypatch.setattr(dm, "hard_mining_loss", real)
    again = method.train(_parts(tmp_path), tmp_path / "resumed", resume)
    resumed = torch.load(tmp_path / "resumed" / dm.WEIGHTS, weights_only=True)
    assert again["resumed_from_iteration"] == 2 and whole["resumed_from_iteration"] is None
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
    assert not resume.exists()  # resume state removed after success


def test_selection_reads_val_only_and_never_test(tmp_path, monkeypatch):
    read = []
    real = dm.DinomalyMethod.load_view

    def spy(self, path, rows):
        read.append(path)
        return real(self, path, rows)

    monkeypatch.setattr(dm.DinomalyMethod, "load_view", spy)
    parts = _parts(tmp_path)
    state = dm.DinomalyMethod({**TINY, "select": "auto"}, device="cpu").train(
        parts, tmp_path / "out", None
    )
    assert state["selection"] == "val" and state["best_iteration"] in (2, 4)
    splits = {r["image_path"]: r["split"] for p in parts for r in p.rows.to_dict("records")}
    assert {splits[p] for p in read} == {"train", "val"}
    log = pd.read_csv(tmp_path / "out" / dm.LOSS_LOG)
    assert list(log["steps"]) == [2, 4] and log["val_score"].notna().all()
    with pytest.raises(ValueError, match="test"):
        parts[0].split_rows("test")


def test_scores_and_maps_of_a_trained_model(tmp_path):
    method = dm.DinomalyMethod(TINY, device="cpu")
    parts = _parts(tmp_path, ("a",))
    method.train(parts, tmp_path / "m", None)
    rows = parts[0].rows
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    inputs = MethodInputs(index=test, rows=rows, dataset={"resize": 112, "crop": 112})
    scores, maps = method.score(tmp_path / "m", inputs, (56, 56))
    assert scores.shape == (2,) and maps.shape == (2, 56, 56) and np.isfinite(maps).all()
    again, _ = dm.DinomalyMethod(TINY, device="cpu").score(tmp_path / "m", inputs, (56, 56))
    np.testing.assert_array_equal(scores, again)


def test_the_weld_variant_scores_a_run_by_the_max_over_its_views(tmp_path):
    view = dm.ViewDinomaly({**TINY, "kind": "view_dinomaly"}, device="cpu")
    scores = np.array([0.1, 0.7, 0.3, 0.2])
    owner = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(view.aggregate(scores, owner, 2), [0.7, 0.2])
    mean = dm.ViewDinomaly({**TINY, "kind": "view_dinomaly", "aggregate": "mean"}, device="cpu")
    np.testing.assert_allclose(mean.aggregate(scores, owner, 2), [(0.1 + 0.7 + 0.3) / 3, 0.2])
    # the label box is blanked with the photo's mean colour before the resize
    photo = np.zeros((20, 20, 3), dtype=np.uint8)
    photo[:4, :4] = 200
    Image.fromarray(photo).save(tmp_path / "p.png")
    rows = pd.DataFrame({"x": [0]})
    rows.attrs["label_mask"] = [0, 0, 4, 4]
    view.params = params_of({**TINY, "kind": "view_dinomaly", "image_size": 20, "crop_size": 14})
    seen = view.load_view(str(tmp_path / "p.png"), rows)
    assert seen.shape == (14, 14, 3) and seen.max() < 200


def test_params_refuse_bad_combinations():
    with pytest.raises(ConfigError, match="multiple of 14"):
        params_of({**TINY, "crop_size": 100, "image_size": 120})
    with pytest.raises(ConfigError, match="group"):
        params_of({**TINY, "groups": [[0, 9]]})
    with pytest.raises(ConfigError, match="warmup_iters"):
        params_of({**TINY, "iterations": 2, "warmup_iters": 2})
    assert params_of(TINY).needs().training == "per_dataset"
    assert params_of({**TINY, "multi_class": False}).needs().training == "per_category"
    assert params_of({**TINY, "select": "val"}).splits_read() == {"val"}


# --- the DAG: one multi-class training per dataset ----------------------------------------------


def test_the_multi_class_model_is_trained_once_per_dataset(tmp_path):
    entry = {k: v for k, v in TINY.items()}
    config = {
        "datasets": {
            "demo": {
                "layout": "mvtec",
                "root": "resources/datasets/demo",
                "categories": ["brick", "grass", "gravel"],
                "demo": {"seed": 0, "image_size": 64, "n_train": 4, "n_test_good": 2,
                         "n_per_defect": 1},
                "resize": 112,
                "crop": 112,
            }
        },
        "backbones": {},
        "methods": {"dinomaly": entry, "dinomaly_pc": {**entry, "multi_class": False}},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        snakemake_cmd(tmp_path, "-n", "--cores", "1"), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stats = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.MULTILINE)}
    assert stats["train_dataset"] == 1  # multi-class: all three categories, one job
    assert stats["fit"] == 3  # multi_class: false -> one model per category
    assert stats["score"] == 6
    assert "results/demo/multiclass/dinomaly" in proc.stdout


# --- start-up checks ------------------------------------------------------------------------------


def _weld_example():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    return yaml.safe_load((repo / "config/examples/welding.yaml").read_text()), repo


def test_dinomaly_on_weld_runs_is_refused_and_view_dinomaly_off_them():
    from iadbench.config import prepare_config

    cfg, repo = _weld_example()
    schema = repo / "config" / "schema.yaml"
    assert prepare_config(dict(cfg), schema, ["t.yaml"])[0]["methods"]["view_dinomaly"]
    bad = {**cfg, "methods": {"d": {**TINY}}}
    with pytest.raises(ConfigError, match="view_dinomaly"):
        prepare_config(bad, schema, ["t.yaml"])
    images = {"layout": "mvtec", "root": "resources/datasets/demo", "categories": ["brick"]}
    off = {
        **cfg,
        "datasets": {**cfg["datasets"], "images": images},
        "methods": {"v": {**TINY, "kind": "view_dinomaly", "datasets": ["images"]}},
    }
    with pytest.raises(ConfigError, match="has no runs"):
        prepare_config(off, schema, ["t.yaml"])
    no_val = {**cfg, "datasets": {"images": images}, "methods": {"d": {**TINY, "select": "val"}}}
    with pytest.raises(ConfigError, match="val"):
        prepare_config(no_val, schema, ["t.yaml"])
