"""The crane kind (METHODS §12) without Snakemake: its options and cached view, the method's
deterministic / Bayes / fused outputs on cached arrays, the caches' identities, the variance
analysis and its report section."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_png
from scipy.ndimage import gaussian_filter

from iadbench.clip.cache import load_arrays, noisy_identity, view_identity
from iadbench.config import prepare_config
from iadbench.errors import CacheError, ConfigError
from iadbench.methods.base import MethodInputs
from iadbench.methods.crane import bayes
from iadbench.methods.crane import refined as crane
from iadbench.methods.crane.method import CHUNK, Crane
from iadbench.methods.crane.params import CraneParams
from iadbench.methods.kinds import params_of
from iadbench.pipeline import make_noisy_text, make_visual, variance_analysis
from iadbench.pipeline.clip import cached_outputs
from iadbench.pipeline.evaluation import TABLE_PROVENANCE
from iadbench.report.html import Page
from iadbench.report.variance import add_variance_section

REPO = Path(__file__).resolve().parents[1]
BACKBONES = {
    "tiny": {"model": "clip_tiny", "weights": "random", "seed": 0},
    "dino": {"model": "dinov2_vitb14", "weights": "random", "seed": 0},
    "r18": {"model": "resnet18", "weights": "random"},
}


def crane_entry(**options) -> dict:
    return {"kind": "crane", "backbone": "tiny", **options}


def view(**options) -> tuple[str, dict]:
    return params_of(crane_entry(**options)).visual_view("clip_tiny", BACKBONES)


# --- options -------------------------------------------------------------------------------------


def test_bayes_seed_defaults_to_the_entry_seed_and_sigma_to_the_delivered_value():
    params = params_of(crane_entry(seed=5, bayes={"samples": 4}))
    assert params.bayes == {"samples": 4, "sigma": None, "seed": 5, "init_logstd": None}
    assert params.bayes_sigma == 0.001
    assert params.needs().noisy_text == (4, 0.001, 5)
    assert params_of(crane_entry(seed=5, bayes={"seed": 2})).bayes["seed"] == 2
    logstd = params_of(crane_entry(bayes={"init_logstd": -6.907755}))
    assert logstd.bayes_sigma == pytest.approx(0.001, rel=1e-6)


@pytest.mark.parametrize(
    "given", [{}, {"sigma": 0.02}, {"init_logstd": -3.0}, {"sigma": 0.0}]
)  # fmt: skip
def test_the_torch_free_sigma_agrees_with_the_bayes_module(given):
    params = params_of(crane_entry(bayes=given))
    assert params.bayes_sigma == bayes.bayes_sigma(given.get("sigma"), given.get("init_logstd"))


def test_what_is_cached_follows_samples_and_sigma():
    off = params_of(crane_entry(bayes={"samples": 0}, fusion_alpha=0)).needs()
    assert off.noisy_text is None and not off.uncertainty
    zero = params_of(crane_entry(bayes={"sigma": 0})).needs()
    assert zero.noisy_text is None and zero.uncertainty  # std reported, exactly zero
    assert params_of(crane_entry()).needs().inputs == {"visual", "text"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bayes": {"samples": 0}}, "fusion_alpha 0.5 mixes in the Bayes path"),
        ({"bayes": {"samples": 1}}, "one sample has no std"),
        ({"bayes": {"sigma": 0.1, "init_logstd": -2.0}}, "not both"),
        ({"bayes": {"samplez": 3}}, r"bayes: .*\('samplez' was unexpected\)"),
        ({"rcs": {"lam": 2.0}}, r"rcs\.lam: 2\.0 is greater than the maximum of 1"),
        ({"attn_type": "qq+qq"}, "distinct terms"),
        ({"attn_type": "qk"}, "distinct terms"),
        ({"image_score_mode": "mean"}, "image_score_mode"),
        ({"fusion_alpha": 1.5}, r"\[0, 1\]"),
        ({"final_attn": "sfr"}, "none or rcs"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        params_of(crane_entry(**options))


def test_equivalent_visual_options_share_one_view():
    name, options = view()
    assert options == {
        "attn_type": "qq+kk+vv", "eattn_from": 0, "taps": [0, 1, 2, 3], "dino": None, "rcs": None
    }  # fmt: skip
    assert name.startswith("crane-") and len(name) == len("crane-") + 8
    assert view(attn_type="vv+qq+kk", eattn_from=-4, taps=[-4, 1, 2, -1])[0] == name
    assert view(eattn_from=crane.default_eattn_from(4))[0] == name
    # Scoring options and the D-Attn/RCS options of an unused D-Attn/RCS name the same view.
    scoring = dict(
        prompts="winclip",
        temperature=0.05,
        image_score_mode="cls",
        sigma=0.0,
        soft_mean=False,
        bayes={"samples": 3, "sigma": 0.5},
        beta=2.0,
        rcs={"lam": 1},
    )
    assert view(**scoring)[0] == name  # fmt: skip
    assert view(attn_type="vv")[0] != name
    assert view(eattn_from=2)[0] != name
    assert view(taps=[3])[0] != name


def test_rcs_and_dino_options_resolve_into_the_view():
    _, options = view(final_attn="rcs", rcs={"layers": [-3, 2], "tau": 1})
    assert options["rcs"] == {"lam": 0.3, "tau": 1.0, "layers": [1, 2], "scale_by_terms": True}
    # null: ResCLIP's range(5, 9) of 12 blocks scaled to 4, range(4 * 5 // 12, 4 * 9 // 12).
    assert view(final_attn="rcs")[1]["rcs"]["layers"] == [1, 2]
    name, options = view(dino="dino", beta=1.5)
    assert options["dino"] == {
        "model": "dinov2_vitb14", "weights": "random", "seed": 0, "beta": 1.5, "gamma": 3.0,
        "input": "block",
    }  # fmt: skip
    assert view(dino="dino", beta=1.2)[0] != name
    assert view(dino="dino", beta=1.5, dattn_input="attention")[0] != name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"taps": [4]}, r"layer 4 outside -4..3"),
        ({"eattn_from": -5}, "eattn_from -5 outside"),
        ({"final_attn": "rcs", "eattn_from": 4}, "starts none of the 4 blocks"),
        ({"final_attn": "rcs", "rcs": {"layers": [5, 6, 7, 8]}}, "rcs layer 5 outside"),
        ({"final_attn": "rcs", "rcs": {"layers": [1, -3]}}, "distinct blocks"),
        ({"dino": "nope"}, "dino 'nope' is not defined under backbones"),
        ({"dino": "r18"}, "resnet18, not a DINOv2 model"),
    ],
)
def test_options_that_do_not_fit_the_backbones_fail_at_start_up(options, message):
    config = {
        "datasets": {"d": {"root": "r", "categories": ["a"]}},
        "backbones": copy.deepcopy(BACKBONES),
        "methods": {"c": crane_entry(**options)},
    }
    with pytest.raises(ConfigError, match=f"x.yaml: method 'c': .*{message}"):
        prepare_config(config, REPO / "config/schema.yaml", ["x.yaml"])


# Where each option shows in a result row: describe() or (resolved) the score table.
RECORDED = {
    "prompts": "prompts", "class_name": "class_name", "attn_type": "attn_type",
    "eattn_from": "eattn_from", "taps": "taps", "dino": "dino", "beta": "dattn_beta",
    "gamma": "dattn_gamma", "image_score_mode": "image_score_mode",
    "temperature": "temperature", "sigma": "map_sigma", "soft_mean": "soft_mean",
    "upsample_logits": "upsample_logits", "dattn_input": "dattn_input",
    "final_attn": "final_attn", "rcs": "rcs_layers", "bayes": "bayes_sigma",
    "fusion_alpha": "fusion_alpha",
}  # fmt: skip


def test_every_option_is_in_the_result_row():
    assert set(RECORDED) == set(CraneParams().to_dict())
    params = params_of(crane_entry(dino="dino", final_attn="rcs", seed=3))
    described = params.describe({})
    assert set(RECORDED.values()) <= set(described) | set(TABLE_PROVENANCE)
    assert {"rcs_lam", "rcs_tau", "bayes_samples", "bayes_seed"} <= set(described)
    assert described["bayes_seed"] == 3 and described["bayes_sigma"] == 0.001
    assert described["dattn_beta"] == 1.2 and described["rcs_layers"] == "auto"
    assert "rcs_layers" in TABLE_PROVENANCE  # the resolved blocks, written by the method
    # Options that do not apply are n/a, not a misleading value.
    plain = params_of(crane_entry(bayes={"samples": 0}, fusion_alpha=0)).describe({})
    assert plain["dattn_beta"] is None and plain["rcs_lam"] is None
    assert plain["bayes_sigma"] is None and plain["fusion_alpha"] == 0.0


# --- the method on cached arrays -----------------------------------------------------------------

N, GRID, DIM, SIZE = 5, (4, 4), 8, (16, 16)


def cached(n: int = N, samples: int = 3, seed: int = 0) -> dict:
    """A Crane view, text embeddings and noisy prototypes as cached_outputs returns them."""
    g = torch.Generator().manual_seed(seed)
    normal, anomalous = ["a", "b"], ["c"]
    options = {"taps": [1, 3], "eattn_from": 1}
    identity = {"model": "clip_tiny", "weights": "random", "options": options, "guide": None}
    out = {
        "visual": {
            "cls": torch.randn(n, DIM, generator=g).numpy(),
            "tokens": torch.randn(n, 2, *GRID, DIM, generator=g).numpy(),
            "meta": {"identity": identity, "sources": [[1, "eattn"], [3, "eattn"]]},
        },
        "text": {
            "normal": torch.randn(2, DIM, generator=g).numpy(),
            "anomalous": torch.randn(1, DIM, generator=g).numpy(),
            "normal_sentences": np.array(normal),
            "anomalous_sentences": np.array(anomalous),
            "meta": {"class_name": "widget"},
        },
    }
    if samples:
        out["noisy_text"] = {
            "prototypes": torch.randn(samples, 2, DIM, generator=g).numpy(),
            "normal_sentences": np.array(normal),
            "anomalous_sentences": np.array(anomalous),
        }
    return out


def score(arrays: dict, **options):
    method = Crane(crane_entry(**options), device="cpu")
    return method.score(None, MethodInputs(pd.DataFrame(index=range(N)), cached=arrays), SIZE)


def by_hand(arrays: dict, mode: str = "map_max", tau: float = 0.07, blur: float = 4.0) -> dict:
    """Crane's deterministic and Bayes outputs written out with numpy/scipy primitives in float64
    (METHODS §12): unit-mean prototypes, per-tap two-class softmax of cos/τ averaged over taps,
    bilinear upsampling (half-pixel centres), a σ = 4 Gaussian, the map max or Crane's pooled
    embedding, then the mean and Bessel std over the noisy prototypes."""

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def p_abnormal(x, protos):  # softmax([c_n, c_a] / τ)[1] = 1 / (1 + exp((c_n − c_a) / τ))
        cos = unit(x) @ unit(protos).T
        return 1.0 / (1.0 + np.exp((cos[..., 0] - cos[..., 1]) / tau))

    def upsample(grid):  # (h, w) -> SIZE, bilinear with align_corners=False
        out = grid
        for axis, n_out in ((0, SIZE[0]), (1, SIZE[1])):
            n_in = out.shape[axis]
            src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
            lo = np.floor(src).astype(int)
            hi, frac = np.minimum(lo + 1, n_in - 1), src - lo
            a, b = np.take(out, lo, axis=axis), np.take(out, hi, axis=axis)
            shape = [1, 1]
            shape[axis] = n_out
            out = a + (b - a) * frac.reshape(shape)
        return out

    v, t = arrays["visual"], arrays["text"]
    tokens = v["tokens"].astype(np.float64)  # (N, taps, h, w, D)
    cls = v["cls"].astype(np.float64)
    plain = np.stack([unit(unit(t[s].astype(np.float64)).mean(0)) for s in ("normal", "anomalous")])

    def one(protos):
        grid = np.mean([p_abnormal(tokens[:, k], protos) for k in range(tokens.shape[1])], 0)
        maps = np.stack(
            [gaussian_filter(upsample(g), blur, mode="reflect", truncate=4.0) for g in grid]
        )
        if mode == "map_max":
            return maps.max(axis=(1, 2)), maps
        cos = unit(tokens) @ unit(protos).T / tau  # (N, taps, h, w, 2)
        mean_logits = cos.mean(1)
        weight = 1.0 / (1.0 + np.exp(mean_logits[..., 0] - mean_logits[..., 1]))
        local = unit((unit(tokens).mean(1) * weight[..., None]).sum(axis=(1, 2)))
        pooled = unit(0.5 * local + 0.5 * unit(cls))
        return p_abnormal(pooled, protos), maps

    det_scores, det_maps = one(plain)
    out = {"det_scores": det_scores, "det_maps": det_maps}
    if "noisy_text" in arrays:
        runs = [one(p.astype(np.float64)) for p in arrays["noisy_text"]["prototypes"]]
        s, m = np.stack([r[0] for r in runs]), np.stack([r[1] for r in runs])
        out.update(
            bay_scores=s.mean(0), bay_maps=m.mean(0),
            score_std=s.std(0, ddof=1), map_std_mean=m.std(0, ddof=1).mean(axis=(1, 2)),
        )  # fmt: skip
    return out


@pytest.mark.parametrize("mode", ["map_max", "pooled"])
def test_alpha_0_1_and_between_against_a_hand_computation(mode):
    arrays = cached()
    hand = by_hand(arrays, mode)
    close = {"rtol": 1e-5, "atol": 1e-6}
    draws = {"bayes": {"samples": 3, "sigma": 0.01}, "image_score_mode": mode}
    scores, maps, columns = score(arrays, fusion_alpha=0, **draws)
    np.testing.assert_allclose(scores, hand["det_scores"], **close)
    np.testing.assert_allclose(maps, hand["det_maps"], **close)
    np.testing.assert_allclose(columns["score_std"], hand["score_std"], **close)
    np.testing.assert_allclose(columns["map_std_mean"], hand["map_std_mean"], **close)
    assert np.all(columns["score_std"] > 0)
    scores, maps, _ = score(arrays, fusion_alpha=1, **draws)
    np.testing.assert_allclose(scores, hand["bay_scores"], **close)
    np.testing.assert_allclose(maps, hand["bay_maps"], **close)
    assert not np.allclose(hand["bay_scores"], hand["det_scores"], rtol=1e-9, atol=0)
    scores, maps, _ = score(arrays, fusion_alpha=0.25, **draws)
    mixed = {k: 0.75 * hand[f"det_{k}"] + 0.25 * hand[f"bay_{k}"] for k in ("scores", "maps")}
    np.testing.assert_allclose(scores, mixed["scores"], **close)
    np.testing.assert_allclose(maps, mixed["maps"], **close)


def test_sigma_0_and_no_sampling_give_the_hand_computed_deterministic_path_with_zero_or_no_std():
    arrays = cached(samples=0)
    hand = by_hand(arrays)
    off_scores, off_maps, off = score(arrays, bayes={"samples": 0}, fusion_alpha=0)
    zero_scores, zero_maps, zero = score(arrays, bayes={"samples": 8, "sigma": 0})
    for scores, maps in ((off_scores, off_maps), (zero_scores, zero_maps)):
        np.testing.assert_allclose(scores, hand["det_scores"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(maps, hand["det_maps"], rtol=1e-5, atol=1e-6)
    assert np.array_equal(off_scores, zero_scores) and np.array_equal(off_maps, zero_maps)
    assert "score_std" not in off and "map_std_mean" not in off
    assert not zero["score_std"].any() and not zero["map_std_mean"].any()
    assert set(zero["taps"]) == {"1,3"} and set(zero["class_name"]) == {"widget"}
    assert "dino_weights" not in zero
    arrays["visual"]["meta"]["identity"]["guide"] = {"weights": "random:seed0"}
    guided = score(arrays, bayes={"samples": 0}, fusion_alpha=0)[2]
    assert set(guided["dino_weights"]) == {"random:seed0"}


def test_images_are_scored_independently_of_the_chunking():
    n = CHUNK + 3
    arrays = cached(n=n)
    method = Crane(crane_entry(bayes={"samples": 3, "sigma": 0.1}, image_score_mode="pooled"))
    whole = method.score(None, MethodInputs(pd.DataFrame(index=range(n)), cached=arrays), SIZE)
    head = {
        key: {k: (v[:4] if k in ("cls", "tokens") else v) for k, v in part.items()}
        for key, part in arrays.items()
    }
    first = method.score(None, MethodInputs(pd.DataFrame(index=range(4)), cached=head), SIZE)
    np.testing.assert_array_equal(whole[0][:4], first[0])
    np.testing.assert_array_equal(whole[1][:4], first[1])
    np.testing.assert_array_equal(whole[2]["score_std"][:4], first[2]["score_std"])


def test_noisy_prototypes_of_other_sentences_are_refused():
    arrays = cached()
    arrays["noisy_text"]["anomalous_sentences"] = np.array(["d"])
    with pytest.raises(CacheError, match="other anomalous sentences"):
        score(arrays, bayes={"samples": 3, "sigma": 0.01})
    del arrays["noisy_text"]
    with pytest.raises(CacheError, match="needs its cached noisy prototypes"):
        score(arrays, bayes={"samples": 3, "sigma": 0.01})


# --- the cached files ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crane_images")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        image = write_png(root / f"{i}.png", rng.integers(0, 255, (48, 48, 3), np.uint8))
        rows.append(dict(sample_id=f"w/{i}", category="w", split="test", image_path=str(image)))
    path = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


GEOMETRY = {"resize": 48, "crop": 48}


def test_a_guided_view_holds_dattn_tokens_and_names_its_dino_weights(manifest, tmp_path):
    name, options = view(dino="dino", taps=[3], final_attn="rcs", rcs={"layers": [1, 2]})
    out = tmp_path / f"visual-{name}.npz"
    make_visual(manifest, "w", "test", BACKBONES["tiny"], GEOMETRY, name, out, "cpu", options)
    expect = view_identity(BACKBONES["tiny"], GEOMETRY, f"visual-{name}", options)
    arrays, meta = load_arrays(out, expect)
    # DINOv2 ViT-B/14 at 224 px: a 16x16 grid, on which D-Attn and E-Attn tokens both lie.
    assert arrays["tokens"].shape == (3, 2, 16, 16, 32) and arrays["cls"].shape == (3, 32)
    assert meta["sources"] == [[3, "dattn"], [3, "eattn"]] and meta["grid"] == [16, 16]
    assert meta["identity"]["guide"]["weights"].startswith("random")
    other = {**options, "dino": {**options["dino"], "beta": 1.0}}
    with pytest.raises(CacheError, match="refusing"):
        load_arrays(out, view_identity(BACKBONES["tiny"], GEOMETRY, f"visual-{name}", other))
    with pytest.raises(CacheError, match="is not that of the options"):
        make_visual(manifest, "w", "test", BACKBONES["tiny"], GEOMETRY, name, out, "cpu", other)


def test_a_view_is_refused_when_the_score_job_expects_other_options(manifest, tmp_path):
    name, options = view(taps=[2, 3])
    out = tmp_path / f"visual-{name}.npz"
    make_visual(manifest, "w", "test", BACKBONES["tiny"], GEOMETRY, name, out, "cpu", options)
    files, ids = {"visual": str(out)}, ["w/2", "w/0", "w/1"]
    got = cached_outputs(files, {"visual"}, BACKBONES["tiny"], GEOMETRY, ids, options)
    assert got["visual"]["tokens"].shape == (3, 2, 8, 8, 32)
    with pytest.raises(CacheError, match="refusing"):
        cached_outputs(
            files, {"visual"}, BACKBONES["tiny"], GEOMETRY, ids, {**options, "taps": [3]}
        )


def test_noisy_prototypes_are_keyed_by_sigma_samples_and_seed(tmp_path):
    out = tmp_path / "noisy.npz"
    make_noisy_text(BACKBONES["tiny"], "winclip", "widget", 3, 0.01, 4, out, "cpu")
    arrays, meta = load_arrays(out, noisy_identity(BACKBONES["tiny"], 3, 0.01, 4))
    assert arrays["prototypes"].shape == (3, 2, 32) and meta["class_name"] == "widget"
    assert len(arrays["normal_sentences"]) == 7 * 22
    for draw in ((3, 0.02, 4), (4, 0.01, 4), (3, 0.01, 5)):
        with pytest.raises(CacheError, match="refusing"):
            load_arrays(out, noisy_identity(BACKBONES["tiny"], *draw))
    with pytest.raises(CacheError, match="sigma > 0"):
        make_noisy_text(BACKBONES["tiny"], "winclip", "widget", 3, 0.0, 4, out, "cpu")


# --- variance analysis and report ----------------------------------------------------------------


def score_table(std: list[float]) -> pd.DataFrame:
    n = len(std)
    return pd.DataFrame({
        "sample_id": [f"s{i}" for i in range(n)], "category": "w", "split": "test",
        "label": [i % 2 for i in range(n)], "defect_type": "x", "score": np.linspace(0, 1, n),
        "score_std": std, "map_std_mean": [s / 2 for s in std],
    })  # fmt: skip


def test_variance_analysis_writes_the_per_image_spread_and_a_histogram(tmp_path):
    scores = tmp_path / "scores.parquet"
    score_table([0.001, 0.003, 0.002]).to_parquet(scores)
    frame = variance_analysis(scores, tmp_path / "v.csv", tmp_path / "v.png", "demo / c / w")
    written = pd.read_csv(tmp_path / "v.csv")
    assert list(written.columns) == [
        "sample_id", "category", "label", "defect_type", "score", "score_std", "map_std_mean"
    ]  # fmt: skip
    np.testing.assert_allclose(written["score_std"], [0.001, 0.003, 0.002])
    assert len(frame) == 3 and (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
    score_table([0.0]).drop(columns="score_std").to_parquet(scores)
    with pytest.raises(CacheError, match=r"lacks \['score_std'\]"):
        variance_analysis(scores, tmp_path / "v.csv", tmp_path / "v.png", "t")


def test_report_section_lists_the_spread_and_draws_a_histogram_per_sampled_result(tmp_path):
    scores = tmp_path / "s.parquet"
    score_table([0.001, 0.002]).to_parquet(scores)
    summary = pd.DataFrame({
        "dataset": "demo", "method": ["bay", "det", "bay"], "category": ["w", "w", "macro_mean"],
        "average": ["per_category", "per_category", "macro"], "bayes_samples": [8, 0, 8],
        "bayes_sigma": [0.001, None, 0.001], "score_std_mean": [0.0015, None, 0.0015],
        "score_std_max": [0.002, None, 0.002], "map_std_mean": [0.00075, None, 0.00075],
    })  # fmt: skip
    items = [
        {"dataset": "demo", "method": m, "category": "w", "scores": str(scores)}
        for m in ("bay", "det")
    ]
    page = Page("t")
    assert add_variance_section(page, summary, items)
    (section,) = page.sections
    html = "".join(b for b in section.blocks if isinstance(b, str))
    assert "<td>bay</td>" in html and "<td>det</td>" not in html
    assert "0.0015" in html and "0.002" in html and "0.00075" in html
    assert [img.name for img in page.images] == ["variance-demo-bay-w.png"]
    assert not add_variance_section(Page("t"), summary.drop(columns="score_std_mean"), items)
