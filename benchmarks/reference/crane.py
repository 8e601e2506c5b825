"""Crane (training-free path): ours beside the authors' code (AlirezaSalehy/Crane) at equal weights.

* weights: one random ``clip_vit_b32`` (open_clip ViT-B-32 with OpenAI's QuickGELU, iadbench's
  seeded init, ``load_clip(..., "random", seed=--weights-seed)``). Crane's ``build_model`` gets
  its state dict (both towers, strict load, every tensor checked equal). ViT-B-32 because Crane's
  builder derives the head count as ``width // 64``, which ``clip_tiny`` (head width 32) breaks,
  and ViT-L-14-336, its own model, is too slow for a CI fixture on two cores.
* their code, imported from ``--crane-repo`` (nothing copied): ``models.build_model``,
  ``VisionTransformer.replace_with_EAttn(to_layer=depth - eattn_from + 1, type=attn_type)``
  (their ``to_layer=20`` of ViT-L's 24 blocks is our ``eattn_from`` 5; for 12 blocks our default
  2 gives ``to_layer=11``), ``test.ScoreCalculator.forward`` (refined path, per-tap logits,
  ``regrid_upsample``, ``ScoreBasePooling``), then ``scipy.ndimage.gaussian_filter(sigma=4)`` on
  each map as their ``process_dataset`` does. Text: Crane's tokenizer and text tower
  (``encode_text_learn`` with no deep prompts: their plain ``encode_text`` cannot run once the
  text blocks take learnable tokens); Crane's code has only learned prompts, so the harness
  averages the unit sentence embeddings per state (APRIL-GAN's ensemble mean) into the (1, 2, D)
  ``text_features`` their scorer reads.
* stubs (imports irrelevant to the compared path, so their ``test.py`` imports without its
  training/data dependencies): ``pkg_resources`` (a torch version check; given ``packaging``),
  ``termcolor``, ``humanhash``, ``albumentations``. CUDA is never touched: ``ScoreCalculator``
  is called directly, not through ``process_dataset``'s ``DataParallel(...).cuda()``.
* input: Crane's own transform (``utils.transform.get_transform``: PIL bicubic resize to
  224, ToTensor, OpenAI mean/std) on each image; both models get that tensor.
* our side: ``iadbench.methods.crane.refined.crane_tokens`` + ``crane_scores`` (what the
  ``clip_visual`` rule and ``Crane.score`` run on cached outputs), switches per setting in the
  row: Crane's ``test.py`` defaults (``features_list 24``, ``soft_mean False``, score-based
  pooling) are our ``taps [-1]``, ``soft_mean: false`` with ``upsample_logits: true``,
  ``image_score_mode: pooled``; Bayes sampling off (``bayes.samples 0``, ``fusion_alpha 0``).
  Crane's in-place updates make every refined tap its last block's tokens (``taps [-1]``
  reproduces its 4-tap runs) and give its D-Attn V from the stream after the block's attention
  residual (``dattn_input: attention``); see ``SETTINGS`` and :class:`DinoStandIn`.
* ResCLIP's RCS (``--resclip-repo``): :func:`resclip_rows`.

``--crane-write-fixture`` stores the reference's scores and maps (every 8th pixel) and how they
were made in ``tests/fixtures/reference/crane.{npz,json}`` (and, with ``--resclip-repo``,
``crane_rcs.*``) for ``tests/test_reference_crane.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from .common import import_checkout, import_from, print_row, row, save_fixture

REFERENCE = "Crane (AlirezaSalehy/Crane)"
BACKBONE = "clip_vit_b32"
SIZE = 224
SIGMA = 4
STRIDE = 8  # fixture maps keep every 8th pixel: 28x28 of 224x224
# The prompt sets the harness can use: built-in names, or ``pair`` (one sentence per state, so a
# CI run encodes 2 sentences instead of 420).
PAIR = {"normal": ["a photo of a flawless {}."], "anomalous": ["a photo of a damaged {}."]}
# One row each: their taps (0-based; None = the registry's 4, 1-based ``features_list``), our taps,
# soft_mean, score-based pooling, D-Attn. Crane's refined stream is updated in place
# (``x += x_res``) and its taps are views of it, so every tap from ``eattn_from`` on ends as the
# last block's tokens: ``taps [-1]`` on our side reproduces its 4-tap runs; the "ours 4 taps" row
# shows what 4 distinct taps give instead.
SETTINGS = {
    "test.py defaults": dict(theirs=(-1,), ours=(-1,), soft_mean=False, pooling=True),
    "4 taps, soft mean": dict(theirs=None, ours=(-1,), soft_mean=True, pooling=True),
    "4 taps, CLS score": dict(theirs=None, ours=(-1,), soft_mean=True, pooling=False),
    "4 taps, ours 4 taps": dict(theirs=None, ours=None, soft_mean=True, pooling=True),
    "Crane+ D-Attn, test.py defaults": dict(
        theirs=(-1,), ours=(-1,), soft_mean=False, pooling=True, dino=True
    ),
    "Crane+ D-Attn, dattn_input block": dict(
        theirs=(-1,), ours=(-1,), soft_mean=False, pooling=True, dino=True, dattn_input="block"
    ),
}
# The rows where ours equals theirs, kept in the fixture (the others are diagnostics).
FIXTURE_SETTINGS = (
    "test.py defaults",
    "4 taps, soft mean",
    "4 taps, CLS score",
    "Crane+ D-Attn, test.py defaults",
)
DINO = "dinov2_tiny_reg4"  # the stand-in for torch.hub's dinov2_vitb14_reg (offline here)


def add_arguments(ap) -> None:
    g = ap.add_argument_group("crane")
    g.add_argument("--crane-repo", type=Path, help="checkout of AlirezaSalehy/Crane")
    g.add_argument(
        "--crane-commit", help="the checkout's commit when it is not a git work tree (an archive)"
    )
    g.add_argument("--crane-prompts", default="april_gan", help="april_gan, winclip or pair")
    g.add_argument("--crane-class-name", default="object", help="Crane's prompts say 'object'")
    g.add_argument("--crane-settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    g.add_argument("--resclip-repo", type=Path, help="checkout of yvhangyang/ResCLIP (RCS rows)")
    g.add_argument("--resclip-commit", help="its commit when it is not a git work tree")
    g.add_argument(
        "--crane-write-fixture", action="store_true", help="write tests/fixtures/reference/crane.*"
    )


# --------------------------------------------------------------------------- their side


def _stub_imports() -> list[str]:
    """Modules their ``test.py``/``models`` import that the compared path never uses."""
    import packaging.version

    stubs = {
        "pkg_resources": types.SimpleNamespace(
            packaging=types.SimpleNamespace(version=packaging.version)
        ),
        "termcolor": types.SimpleNamespace(colored=lambda text, *a, **k: text),
        "humanhash": types.SimpleNamespace(humanize=lambda *a, **k: "stub"),
        "albumentations": types.SimpleNamespace(),
    }
    added = []
    for name, stub in stubs.items():
        if name not in sys.modules:
            try:
                __import__(name)
                continue
            except ImportError:
                module = types.ModuleType(name)
                module.__dict__.update(vars(stub))
                sys.modules[name] = module
                added.append(name)
    return added


def repo_commit(path: Path) -> str:
    """The checkout's commit when it is a git work tree, else ``unknown`` (an archive)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, text=True, capture_output=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class DinoStandIn:
    """What Crane's ``encode_image`` calls on torch.hub's DINOv2 (``get_intermediate_layers(x,
    reshape=True)[0]``: last block, final norm, (B, C, h, w)), answered by our random timm
    DINOv2 through :func:`~iadbench.methods.crane.refined.dino_patch_tokens`, so both sides get
    the same DINO features and the row measures D-Attn, not DINOv2."""

    def __init__(self, model):
        self.model = model

    def get_intermediate_layers(self, x, reshape=True):
        from iadbench.methods.crane.refined import dino_patch_tokens

        assert reshape
        return [dino_patch_tokens(self.model, x).permute(0, 3, 1, 2)]


class Theirs:
    """Crane's model with our random state dict, its E-Attn, scorer and transform."""

    def __init__(
        self, repo: Path, state: dict, eattn_from: int, attn_type: str, grid: int, size: int
    ):
        self.stubs = _stub_imports()
        self.models = import_from(repo, "models")
        self.crane = import_from(repo, "models.Crane")
        self.prompt_ensemble = import_from(repo, "models.prompt_ensemble")
        self.test = import_from(repo, "test")
        self.transform_mod = import_from(repo, "utils.transform")
        # Crane's D-Attn takes the CLIP token grid as image_size // 14 (ViT-L/14); 14 * grid
        # gives ViT-B-32's grid. The input size itself is ``size`` (transform and upsampling).
        self.others = types.SimpleNamespace(
            image_size=14 * grid, both_eattn_dattn=True, dino_model="none"
        )
        design = {
            "Prompt_length": 12,
            "learnabel_text_embedding_depth": 9,
            "learnabel_text_embedding_length": 4,
            "others": self.others,
        }
        self.model = self.models.build_model.build_model(
            "random", {k: v.clone() for k, v in state.items()}, design
        ).float()
        theirs = self.model.state_dict()
        missing = [k for k in state if k not in theirs]
        assert not missing, f"keys Crane's model lacks: {missing[:5]}"
        assert all(torch.equal(theirs[k], v) for k, v in state.items()), "weights differ"
        depth = len(self.model.visual.transformer.resblocks)
        self.model.visual.replace_with_EAttn(to_layer=depth - eattn_from + 1, type=attn_type)
        self.size = size

    def transform(self, images) -> torch.Tensor:
        from PIL import Image

        preprocess, _ = self.transform_mod.get_transform(
            types.SimpleNamespace(image_size=self.size)
        )
        return torch.stack([preprocess(Image.fromarray(im)) for im in images])

    def set_dino(self, model) -> None:
        """D-Attn on (``model``: our timm DINOv2, wrapped) or off (None), as ``use_DAttn``
        would set it for ``dino_model dinov2`` without torch.hub."""
        self.model.vfm = None if model is None else DinoStandIn(model)
        self.model.vfm_model = "none" if model is None else "dinov2"
        self.others.dino_model = self.model.vfm_model

    @torch.no_grad()
    def text_features(self, normal, anomalous) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(1, 2, D) unit prototypes from Crane's text tower, and the tokens it used."""
        rows, tokens_all = [], []
        for sentences in (normal, anomalous):
            tokens = self.prompt_ensemble.tokenize(sentences)
            emb = self.model.token_embedding(tokens).type(self.model.dtype)
            out = F.normalize(self.model.encode_text_learn(emb, tokens, []).float(), dim=-1)
            rows.append(F.normalize(out.mean(0), dim=-1))
            tokens_all.append(tokens)
        return torch.stack(rows)[None], tokens_all

    @torch.no_grad()
    def score(self, batch, text, taps, soft_mean, pooling) -> tuple[np.ndarray, np.ndarray, float]:
        """``ScoreCalculator.forward`` then their per-map ``gaussian_filter``. With D-Attn, one
        image at a time: their D-Attn subtracts one mean over the whole batch's affinities."""
        args = types.SimpleNamespace(
            features_list=[t + 1 for t in taps],
            train_with_img_cls_prob=0,
            soft_mean=soft_mean,
            use_scorebase_pooling=pooling,
            image_size=self.size,
        )
        self.test.args = args  # ScoreCalculator.forward reads the module-level ``args``
        calc = self.test.ScoreCalculator(
            self.model, None, args, prompt_learner=None,
            score_base_pooling=self.crane.ScoreBasePooling(),
        )  # fmt: skip
        calc.text_features = text
        calc.eval()
        chunks = batch.split(1) if self.model.vfm is not None else [batch]
        start = time.perf_counter()
        scores, maps = [], []
        for chunk in chunks:
            score, amap = calc(chunk)
            scores.append(score.double().numpy())
            maps += [gaussian_filter(m, sigma=SIGMA) for m in amap.detach().cpu().numpy()]
        seconds = (time.perf_counter() - start) / len(batch)
        return np.concatenate(scores), np.stack(maps).astype(np.float64), seconds


# --------------------------------------------------------------------------- our side


def our_outputs(encoder, batch, protos, setting: dict, taps, dino=None):
    """Our Crane on one normalised batch, as the ``clip_visual`` rule (``encode_crane``) and
    ``Crane.score`` compute it: (scores, maps, seconds per image)."""
    from iadbench.methods.crane.refined import (
        crane_scores,
        crane_tokens,
        dino_patch_tokens,
        renormalize,
    )

    start = time.perf_counter()
    guidance = None
    if dino is not None:
        model, own = dino
        clip = encoder.preprocessing
        guidance = dino_patch_tokens(
            model, renormalize(batch, clip.mean, clip.std, own.mean, own.std)
        )
    tokens = crane_tokens(
        encoder,
        batch,
        taps=list(taps),
        attn_type="qq+kk+vv",
        dino=guidance,
        dattn_input=setting.get("dattn_input", "attention"),
    )
    scores, maps = crane_scores(
        tokens,
        protos,
        tuple(batch.shape[-2:]),
        "pooled" if setting["pooling"] else "cls",
        0.07,
        float(SIGMA),
        setting["soft_mean"],
        upsample_logits=not setting["soft_mean"],
    )
    seconds = (time.perf_counter() - start) / len(batch)
    return scores.double().numpy(), maps.double().numpy(), seconds


def switches(setting: dict, taps, prompts: str) -> str:
    soft = setting["soft_mean"]
    out = [
        f"taps {list(taps)}",
        f"soft_mean {str(soft).lower()}" + ("" if soft else ", upsample_logits true"),
        f"image_score_mode {'pooled' if setting['pooling'] else 'cls'}",
    ]
    if setting.get("dino"):
        out.append(f"dino {DINO} (random), dattn_input {setting.get('dattn_input', 'attention')}")
    out.append(
        f"prompts {prompts}, attn_type qq+kk+vv, eattn_from null (2), sigma 4, "
        "bayes.samples 0, fusion_alpha 0"
    )
    return ", ".join(out)


def prompt_set(name: str):
    return PAIR if name == "pair" else name


def run(args, data) -> list[dict]:
    from iadbench.clip.encoder import load_clip, prototypes
    from iadbench.clip.prompts import sentences
    from iadbench.methods.crane.params import default_eattn_from
    from iadbench.methods.crane.views import load_guide

    encoder = load_clip(BACKBONE, "random", seed=args.weights_seed)
    state = {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}
    depth = len(encoder.visual.transformer.resblocks)
    eattn_from = default_eattn_from(depth)
    print(
        f"weights: random {BACKBONE} (iadbench seeded init, seed {args.weights_seed}), "
        f"{sum(v.numel() for v in state.values()) / 1e6:.1f} M values; E-Attn from block "
        f"{eattn_from} (Crane to_layer={depth - eattn_from + 1})"
    )
    dino = None
    if any(SETTINGS[s].get("dino") for s in args.crane_settings):
        dino = load_guide({"model": DINO, "weights": "random", "seed": args.weights_seed}, "cpu")
        print(f"D-Attn guide: random {DINO} (seed {args.weights_seed}) on both sides")
    with import_checkout(args.crane_repo, "--crane-repo", "models/Crane.py") as repo:
        commit = args.crane_commit or repo_commit(repo)
        theirs = Theirs(repo, state, eattn_from, "qq+kk+vv", encoder.grid[0], SIZE)
        print(f"crane: {repo} ({commit}); stubbed imports: {theirs.stubs or 'none'}")
        rows, fixture = [], {}
        normal, anomalous = sentences(prompt_set(args.crane_prompts), args.crane_class_name)
        text, their_tokens = theirs.text_features(normal, anomalous)
        our_tokens = [encoder.tokenizer(normal), encoder.tokenizer(anomalous)]
        assert all(torch.equal(a.long(), b.long()) for a, b in zip(our_tokens, their_tokens))
        protos = prototypes(encoder.encode_text(normal), encoder.encode_text(anomalous), True)
        d_text = float((protos - text[0]).abs().max())
        print(f"text prototypes ({len(normal)}+{len(anomalous)} sentences): max|d| {d_text:.3g}")
        for cat, (test, _) in data.items():
            names, images = [n for n, _ in test], [im for _, im in test]
            batch = theirs.transform(images)
            for name in args.crane_settings:
                setting = SETTINGS[name]
                their_taps = encoder.resolve_blocks(
                    list(setting["theirs"]) if setting["theirs"] else None
                )
                taps = encoder.resolve_blocks(list(setting["ours"]) if setting["ours"] else None)
                guide = dino if setting.get("dino") else None
                theirs.set_dino(None if guide is None else guide[0])
                r_s, r_m, r_t = theirs.score(
                    batch, text, their_taps, setting["soft_mean"], setting["pooling"]
                )
                o_s, o_m, o_t = our_outputs(encoder, batch, protos, setting, taps, guide)
                features = " ".join(str(t + 1) for t in their_taps)
                r = row(
                    category=cat,
                    method="crane",
                    reference=f"{REFERENCE} @{commit[:7]}",
                    setting=f"{name} (features_list {features})",
                    ours=(o_s, o_m, o_t),
                    theirs=(r_s, r_m, r_t),
                    switches=switches(setting, taps, args.crane_prompts),
                )
                print_row(r)
                rows.append(r)
                if name in FIXTURE_SETTINGS:
                    fixture[f"{cat}/{name}"] = (
                        names,
                        r_s,
                        r_m[:, ::STRIDE, ::STRIDE].astype(np.float32),
                    )
        theirs.set_dino(None)
        if args.resclip_repo is not None:
            kept = {}
            for cat, (test, _) in data.items():
                batch = theirs.transform([im for _, im in test])
                rcs_rows, rcs_kept = resclip_rows(args, encoder, state, batch, cat)
                rows += rcs_rows
                kept.update(rcs_kept)
            if args.crane_write_fixture:
                write_rcs_fixture(args, kept)
        if args.crane_write_fixture:
            write_fixture(args, commit, fixture, d_text, eattn_from)
    return rows


# --------------------------------------------------------------------------- ResCLIP's RCS

# ResCLIP attention strategies without NACLIP's Gaussian window (our A_s is Crane's E-Attn, which
# has none): name -> (our attn_type, our rcs.scale_by_terms)
RCS_SETTINGS = {
    "clearclip": ("qq", True),
    "sclip": ("qq+kk", False),
    "sclip, scale_by_terms true": ("qq+kk", True),
}
# The fixture keeps the matching strategies' output at a few tokens and head 0's weights.
RCS_FIXTURE = ("clearclip", "sclip")
RCS_IMAGES = 2
RCS_TOKENS = (0, 1, 24, 49)


def resclip_rows(args, encoder, state: dict, batch: torch.Tensor, cat: str):
    """ResCLIP's final-block RCS attention beside :mod:`iadbench.methods.crane.rcs` on one batch.

    Their ``VisionTransformer.forward`` (``arch w_resi``, which SCLIP needs; ``use_rcs``, no
    SFR, ``attn_rcs_weights (tau, lam) = (2.0, 0.3)``) runs once per strategy with
    ``custom_attn`` wrapped to record its last call, whose A_c, mixed weights (the same call
    with ``return_attn=True``) and attention output are compared. Ours: the original stream
    through our encoder's blocks, ``standard_attention`` of ``rcs_layers(12)`` averaged, the
    last block's ``eattn_weights``, ``rcs_attention`` and ``attend``. Row "scores" = the
    attention output values, "map" = the mixed weights (per image and head, N x N tokens).
    Returns the rows and what the fixture keeps of their outputs.
    """
    from iadbench.methods.crane.params import RCS_LAMBDA, RCS_TAU, rcs_layers
    from iadbench.methods.crane.rcs import mean_attention, rcs_attention
    from iadbench.methods.crane.refined import (
        attend,
        attn_terms,
        eattn_weights,
        project_qkv,
        standard_attention,
    )

    rows, kept = [], {}
    with import_checkout(args.resclip_repo, "--resclip-repo", "clip/model.py") as repo:
        commit = args.resclip_commit or repo_commit(repo)
        _stub_imports()
        model = import_from(repo, "clip.model").build_model(
            {k: v.clone() for k, v in state.items()}
        )
        # their build_model converts to fp16 before loading: back to float32, exact weights
        model = model.float()
        model.load_state_dict(state)
        visual = model.visual
        n = len(visual.transformer.resblocks)
        for name, (attn_type, scale) in RCS_SETTINGS.items():
            visual.set_params("w_resi", name.split(",")[0], 5.0)
            calls = []
            original = visual.custom_attn

            def recording(*a, _original=original, _calls=calls, **k):
                out = _original(*a, **k)
                _calls.append((a, k))
                return out

            visual.custom_attn = recording
            start = time.perf_counter()
            with torch.no_grad():
                visual(batch, return_all=True, use_rcs=True, use_sfr=False,
                       attn_rcs_weights=(RCS_TAU, RCS_LAMBDA), use_custom_attn=True)  # fmt: skip
                a, k = calls[-1]
                assert k.get("attn_rcs") is not None, "their last block ran without RCS"
                their_out = original(*a, **k).transpose(0, 1)  # (B, N, W)
                their_w = original(*a, **{**k, "return_attn": True})
            r_t = (time.perf_counter() - start) / len(batch)
            del visual.custom_attn
            b, t = batch.shape[0], their_out.shape[1]
            their_w = their_w.reshape(b, -1, t, t)

            start = time.perf_counter()
            with torch.no_grad():
                v = encoder.visual
                x = v.ln_pre(v.patch_dropout(encoder._embedded(batch)))
                cross = []
                for i, block in enumerate(v.transformer.resblocks):
                    normed = block.ln_1(x)
                    q, kk, val = project_qkv(block.attn, normed)
                    if i in rcs_layers(n):
                        cross.append(standard_attention(q, kk))
                    if i == n - 1:
                        terms = attn_terms(attn_type)
                        weights = rcs_attention(
                            eattn_weights(q, kk, val, terms),
                            mean_attention(cross),
                            RCS_LAMBDA,
                            RCS_TAU,
                            len(terms) if scale else 1,
                        )
                        out = attend(block.attn, weights, val)
                    else:
                        x = encoder.run_block(block, x)
            o_t = (time.perf_counter() - start) / len(batch)
            r = row(
                category=cat,
                method="crane rcs",
                reference=f"ResCLIP (yvhangyang/ResCLIP) @{commit[:7]}",
                setting=f"RCS, strategy {name} (score: output, map: weights)",
                ours=(out.numpy(), weights.numpy(), o_t),
                theirs=(their_out.numpy(), their_w.numpy(), r_t),
                switches=f"final_attn rcs, attn_type {attn_type}, rcs.lam {RCS_LAMBDA}, "
                f"rcs.tau {RCS_TAU}, rcs.layers null ({list(rcs_layers(n))}), "
                f"rcs.scale_by_terms {str(scale).lower()}",
            )
            print_row(r)
            rows.append(r)
            if name in RCS_FIXTURE:
                kept[f"{cat}/{name}/output"] = their_out[:RCS_IMAGES, RCS_TOKENS].numpy()
                kept[f"{cat}/{name}/weights"] = their_w[:RCS_IMAGES, 0].numpy()
    return rows, kept


def write_rcs_fixture(args, kept: dict) -> None:
    """``crane_rcs.{npz,json}``: their RCS output at a few tokens and head 0's mixed weights."""
    from iadbench.methods.crane.params import RCS_LAMBDA, RCS_TAU

    meta = {
        "reference": "https://github.com/yvhangyang/ResCLIP",
        "reference_commit": args.resclip_commit or repo_commit(args.resclip_repo),
        "backbone": BACKBONE,
        "weights": "random",
        "weights_seed": args.weights_seed,
        "images": "the first images of crane.json's names, same pre-processing",
        "n_images": RCS_IMAGES,
        "tokens": list(RCS_TOKENS),
        "weights_head": 0,
        "lam": RCS_LAMBDA,
        "tau": RCS_TAU,
        "settings": {
            k: {"attn_type": v[0], "scale_by_terms": v[1]}
            for k, v in RCS_SETTINGS.items()
            if k in RCS_FIXTURE
        },
        "their_call": "VisionTransformer.forward(arch w_resi, use_rcs, no SFR), last "
        "custom_attn call recorded",
        "command": "benchmarks/compare_reference.py " + " ".join(sys.argv[1:]),
    }
    save_fixture("crane_rcs", kept, meta)


def write_fixture(args, commit: str, fixture: dict, d_text: float, eattn_from: int) -> None:
    """``crane.npz`` (per category/setting: reference scores and strided maps) + ``crane.json``."""
    if args.root is not None or args.image_size != SIZE:
        raise SystemExit(f"--crane-write-fixture needs the embedded demo at --image-size {SIZE}")
    arrays = {}
    for key, (_, scores, maps) in fixture.items():
        arrays[f"{key}/scores"] = scores
        arrays[f"{key}/maps"] = maps
    meta = {
        "reference": "https://github.com/AlirezaSalehy/Crane",
        "reference_commit": commit,
        "backbone": BACKBONE,
        "weights": "random",
        "weights_seed": args.weights_seed,
        "dino": DINO,
        "eattn_from": eattn_from,
        "images": "embedded demo (iadbench.data.demo), test images as benchmarks/reference/"
        "common.demo_images picks them",
        "categories": list(args.categories),
        "n_test": args.n_test,
        "image_size": SIZE,
        "map_stride": STRIDE,
        "prompts": prompt_set(args.crane_prompts),
        "class_name": args.crane_class_name,
        "text_prototypes_max_abs_d": d_text,
        "settings": {
            k: {key: list(v) if isinstance(v, tuple) else v for key, v in SETTINGS[k].items()}
            for k in args.crane_settings
            if k in FIXTURE_SETTINGS
        },
        "names": {key: names for key, (names, _, _) in fixture.items()},
        "command": "benchmarks/compare_reference.py " + " ".join(sys.argv[1:]),
    }
    save_fixture("crane", arrays, meta)
