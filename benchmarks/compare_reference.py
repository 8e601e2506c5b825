"""Reference parity: our WinCLIP beside anomalib 2.7.0's ``WinClipModel`` at equal weights.

Printed, never asserted. Runs in the compare venv (anomalib + iadbench editable), CPU, offline:

    .venv-compare/bin/python benchmarks/compare_reference.py --methods winclip
    .venv-compare/bin/python benchmarks/compare_reference.py --root /path/to/mvtec_ad \\
        --categories bottle --n-test 8

What is matched (docs/reference-parity.md, "WinCLIP vs anomalib"):

* weights: one random ``ViT-B-16-plus-240`` (open_clip ``create_model(..., pretrained=None)``
  under ``torch.manual_seed(--weights-seed)``), saved once as a state dict; our side loads the
  file as a backbone ``weights: <path>`` (``load_clip``), anomalib's model gets it with
  ``load_state_dict`` (its ``create_model_and_transforms`` is given ``pretrained=None`` so
  nothing is downloaded); every tensor is checked equal.
* anomalib's window pass is corrected: with open_clip >= 2.26 the visual transformer is
  batch-first, but ``WinClipModel._get_window_embeddings`` still permutes the window batch to
  sequence-first, so attention runs across windows instead of within each (anomalib issue
  #2571). The harness monkeypatches that method (site-packages untouched) and says so.
* our switches that reproduce anomalib: ``prompts: winclip_anomalib`` (its 21 templates with full
  stops, one duplicated: 147 + 84 sentences), raw-embedding prototypes (``normalize_each:
  false``), ``include_image: true``, few-shot tokens from the last block after ``ln_post``.
* input (``--input``): ``shared`` feeds both models anomalib's own pre-processing (torchvision
  ``Resize(240, bicubic, antialias)`` on the float image + CLIP mean/std) -> isolates the method;
  ``own`` gives ours iadbench's pre-processing (PIL resize with ``--our-resample``, default
  ``bicubic``; the pipeline's default is ``bilinear``) -> the end-to-end difference.

Our side is iadbench's WinCLIP maths (``iadbench.methods.winclip.windows`` +
``ClipEncoder``), the same calls ``WinClip.fit``/``score`` make on their cached outputs, without
the Snakemake pipeline or the disk cache.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
ARCH = "ViT-B-16-plus-240"
BACKBONE = "clip_vit_b16_plus_240"
SIZE = 240
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# --------------------------------------------------------------------------- weights, images


def random_weights(path: Path, seed: int) -> dict[str, torch.Tensor]:
    """The random ViT-B-16-plus-240 both sides load: open_clip's init under a fixed seed."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(ARCH, pretrained=None)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)
    return state


def demo_images(categories, n_test: int, n_train: int, size: int):
    """{category: (test [(name, uint8 RGB)], train [uint8 RGB])} from the embedded demo."""
    from iadbench.data.demo import DEFECT_TYPES, make_defect_sample, make_normal_sample

    out = {}
    for cat in categories:
        test = [
            (f"good/{i:03d}", make_normal_sample(cat, "test", i, image_size=size))
            for i in range(n_test // 2)
        ]
        for i in range(n_test - len(test)):
            defect = DEFECT_TYPES[i % len(DEFECT_TYPES)]
            test.append(
                (f"{defect}/{i:03d}", make_defect_sample(cat, defect, i, image_size=size)[1])
            )
        train = [make_normal_sample(cat, "train", i, image_size=size) for i in range(n_train)]
        out[cat] = (test, train)
    return out


def folder_images(root: Path, categories, n_test: int, n_train: int):
    """The same from an MVTec-layout folder: the first test images of each defect type in turn."""
    from iadbench.data.images import load_image

    out = {}
    for cat in categories:
        groups = [sorted(d.glob("*.png")) for d in sorted((root / cat / "test").iterdir())]
        picks = []
        while len(picks) < n_test and any(groups):
            for g in groups:
                if g and len(picks) < n_test:
                    picks.append(g.pop(0))
        test = [(f"{p.parent.name}/{p.stem}", load_image(p)) for p in picks]
        train = [load_image(p) for p in sorted((root / cat / "train" / "good").glob("*.png"))]
        out[cat] = (test, train[:n_train])
    return out


def anomalib_input(images) -> torch.Tensor:
    """anomalib's WinCLIP pre-processor on its float image: Resize(240, bicubic, antialias)."""
    from torchvision.transforms.v2 import Compose, InterpolationMode, Normalize, Resize

    transform = Compose(
        [
            Resize((SIZE, SIZE), antialias=True, interpolation=InterpolationMode.BICUBIC),
            Normalize(mean=CLIP_MEAN, std=CLIP_STD),
        ]
    )
    return torch.stack(
        [
            transform(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255.0)
            for im in images
        ]
    )


def our_input(images, encoder, resample: str) -> torch.Tensor:
    """iadbench's pre-processing: PIL resize (no crop) + the encoder's mean/std."""
    from iadbench.data.images import Geometry
    from iadbench.features.extract import normalise_images

    geo = Geometry(SIZE, SIZE)
    return normalise_images([geo.image(im, resample) for im in images], encoder.preprocessing)


# --------------------------------------------------------------------------- anomalib side


def fixed_window_embeddings(self, feature_map: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """anomalib's ``_get_window_embeddings`` with the layout fixed (anomalib #2571): permute to
    sequence-first only when the transformer is sequence-first."""
    batch_size, n_masks = feature_map.shape[0], masks.shape[1]
    class_index = torch.zeros(1, n_masks, dtype=int).to(feature_map.device)
    masks = torch.cat((class_index, masks + 1)).T
    masked = torch.cat([torch.index_select(feature_map, 1, mask) for mask in masks])
    visual = self.clip.visual
    masked = visual.ln_pre(visual.patch_dropout(masked))
    if getattr(visual.transformer, "batch_first", False):
        masked = visual.transformer(masked)
    else:
        masked = visual.transformer(masked.permute(1, 0, 2)).permute(1, 0, 2)
    masked = visual.ln_post(masked)
    pooled, _ = visual._global_pool(masked)  # noqa: SLF001
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled.reshape((n_masks, batch_size, -1)).permute(1, 0, 2)


def anomalib_model(state: dict, fix_windows: bool):
    """anomalib's WinClipModel with ``state`` loaded (no download), window pass corrected."""
    import open_clip
    from anomalib.models.image.winclip import torch_model

    def create(name, pretrained=None, **kwargs):
        return open_clip.create_model_and_transforms(name, pretrained=None, **kwargs)

    real = torch_model.open_clip
    torch_model.open_clip = types.SimpleNamespace(create_model_and_transforms=create)
    try:
        model = torch_model.WinClipModel()
    finally:
        torch_model.open_clip = real
    model.clip.load_state_dict(state)
    for key, value in model.clip.state_dict().items():
        assert torch.equal(value, state[key]), key
    batch_first = bool(getattr(model.clip.visual.transformer, "batch_first", False))
    if fix_windows:
        model._get_window_embeddings = types.MethodType(fixed_window_embeddings, model)
        print(
            f"anomalib: WinClipModel._get_window_embeddings monkeypatched (open_clip "
            f"{open_clip.__version__}, transformer batch_first={batch_first}): windows attend "
            "within themselves, not across the window batch (anomalib issue #2571)"
        )
    else:
        print("anomalib: window pass NOT corrected (--no-fix-windows): attention crosses windows")
    return model.eval()


def run_anomalib(model, class_name: str, refs, test) -> tuple[np.ndarray, np.ndarray, float]:
    model.setup(class_name, refs)
    start = time.perf_counter()
    with torch.no_grad():
        out = model(test)
    seconds = (time.perf_counter() - start) / len(test)
    return out.pred_score.double().numpy(), out.anomaly_map.double().numpy(), seconds


# --------------------------------------------------------------------------- our side


def run_ours(encoder, class_name: str, refs, test, prompts: str):
    """Our WinCLIP (zero-shot, or WinCLIP+ with ``refs``) as ``WinClip.fit``/``score`` wire it."""
    from iadbench.clip.encoder import prototypes
    from iadbench.clip.prompts import sentences
    from iadbench.clip.scoring import upsample
    from iadbench.methods.winclip.windows import (
        combine_few_shot,
        encode_window_sets,
        few_shot_map,
        reference_memory,
        window_indices,
        zero_shot,
    )

    sizes, grid = (2, 3), encoder.grid
    normal, anomalous = sentences(prompts, class_name)
    protos = prototypes(encoder.encode_text(normal), encoder.encode_text(anomalous), False)
    index = [window_indices(grid, k) for k in sizes]
    memory = None
    if refs is not None:
        tokens = encoder.encode_image(refs, [-1], "ln_post").patches[0]
        windows = encode_window_sets(encoder, iter([refs]), sizes)
        memory = reference_memory(tokens, [torch.from_numpy(windows[f"w{k}"]) for k in sizes])
    start = time.perf_counter()
    out = encoder.encode_image(test, [-1], "ln_post")
    windows = encode_window_sets(encoder, iter([test]), sizes)
    embeddings = [torch.from_numpy(windows[f"w{k}"]) for k in sizes]
    scores, maps = zero_shot(out.cls, embeddings, index, protos, grid, 0.07, True)
    if memory is not None:
        scores, maps = combine_few_shot(
            maps, scores, few_shot_map(out.patches[0], embeddings, index, memory)
        )
    full = upsample(maps, tuple(test.shape[-2:]))
    seconds = (time.perf_counter() - start) / len(test)
    return scores.double().numpy(), full.double().numpy(), seconds, (len(normal), len(anomalous))


# --------------------------------------------------------------------------- main


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    ra, rb = (np.argsort(np.argsort(x)).astype(float) for x in (a, b))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, text=True, capture_output=True
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=["winclip"], choices=["winclip"])
    ap.add_argument("--root", type=Path, help="MVTec-layout folder (default: the embedded demo)")
    ap.add_argument("--categories", nargs="+", default=["brick"])
    ap.add_argument("--n-test", type=int, default=6)
    ap.add_argument("--n-train", type=int, default=4, help="references are the first k of these")
    ap.add_argument("--shots", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--weights-seed", type=int, default=0)
    ap.add_argument("--inputs", nargs="+", default=["shared", "own"], choices=["shared", "own"])
    ap.add_argument("--our-resample", default="bicubic", choices=["bilinear", "bicubic"])
    ap.add_argument("--our-prompts", default="winclip_anomalib")
    ap.add_argument("--no-fix-windows", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from iadbench.clip.encoder import load_clip

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / f"{ARCH}_seed{args.weights_seed}.pt"
        state = random_weights(weights, args.weights_seed)
        print(
            f"weights: random {ARCH}, torch.manual_seed({args.weights_seed}), "
            f"{sum(v.numel() for v in state.values()) / 1e6:.1f} M values -> {weights.name}"
        )
        encoder = load_clip(BACKBONE, str(weights))
        ours_state = encoder.model.state_dict()
        assert all(torch.equal(ours_state[k], v) for k, v in state.items()), "weights differ"
        model = anomalib_model(state, not args.no_fix_windows)

    data = (
        folder_images(args.root, args.categories, args.n_test, args.n_train)
        if args.root
        else demo_images(args.categories, args.n_test, args.n_train, 128)
    )
    rows = []
    for cat, (test, train) in data.items():
        class_name = cat.replace("_", " ")
        images = [im for _, im in test]
        a_test = anomalib_input(images)
        for input_mode in args.inputs:
            o_test = (
                a_test if input_mode == "shared" else our_input(images, encoder, args.our_resample)
            )
            for k in args.shots:
                a_refs = anomalib_input(train[:k]) if k else None
                o_refs = None
                if k:
                    o_refs = (
                        a_refs
                        if input_mode == "shared"
                        else our_input(train[:k], encoder, args.our_resample)
                    )
                # fresh embeddings each setting: setup() keeps earlier references otherwise
                model.k_shot, model.reference_images = 0, None
                a_s, a_m, a_t = run_anomalib(model, class_name, a_refs, a_test)
                o_s, o_m, o_t, n_sent = run_ours(
                    encoder, class_name, o_refs, o_test, args.our_prompts
                )
                assert a_m.shape == o_m.shape, (a_m.shape, o_m.shape)
                row = {
                    "category": cat,
                    "method": "winclip",
                    "input": input_mode,
                    "k_shot": k,
                    "n_images": len(images),
                    "max_abs_d_score": float(np.abs(a_s - o_s).max()),
                    "spearman": spearman(a_s, o_s),
                    "max_abs_d_map": float(np.abs(a_m - o_m).max()),
                    "map_size": f"{a_m.shape[1]}x{a_m.shape[2]}",
                    "anomalib_s_per_img": a_t,
                    "iadbench_s_per_img": o_t,
                    "our_prompts": args.our_prompts,
                    "our_sentences": f"{n_sent[0]}+{n_sent[1]}",
                    "our_resample": "anomalib tensor"
                    if input_mode == "shared"
                    else f"PIL {args.our_resample}",
                }
                rows.append(row)
                print(
                    f"{cat:10s} {input_mode:6s} k={k}  max|dscore| {row['max_abs_d_score']:.3g}"
                    f"  rho {row['spearman']:.4f}  max|dmap| {row['max_abs_d_map']:.3g}"
                    f"  s/img anomalib {a_t:.3f} ours {o_t:.3f}"
                )

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"reference_parity{'_' + args.tag if args.tag else ''}_{dt.date.today().isoformat()}"
    with open(args.out / f"{stem}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import anomalib
    import open_clip

    lines = [
        f"# Reference parity: WinCLIP vs anomalib {anomalib.__version__}",
        "",
        f"Date {dt.date.today().isoformat()}, commit {commit()}, open_clip "
        f"{open_clip.__version__}, torch {torch.__version__}, CPU, {args.threads} threads. "
        f"Weights: random {ARCH} (`torch.manual_seed({args.weights_seed})`, open_clip "
        "`create_model(pretrained=None)`), loaded by both. anomalib's window pass "
        + (
            "corrected by monkeypatch (anomalib #2571)."
            if not args.no_fix_windows
            else "NOT corrected."
        ),
        f"Ours: `prompts: {args.our_prompts}`, `normalize_each: false`, `include_image: true`. "
        "Input `shared`: both get anomalib's pre-processing; `own`: ours its PIL resize "
        f"({args.our_resample}). Images: "
        + (str(args.root) if args.root else "the embedded demo (128 px)")
        + ".",
        "",
        f"Command: `.venv-compare/bin/python benchmarks/compare_reference.py "
        f"{' '.join(sys.argv[1:])}`",
        "",
        "| category | input | k | images | max abs d score | Spearman | max abs d map (240 px) "
        "| anomalib s/img | iadbench s/img |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['category']} | {r['input']} | {r['k_shot']} | {r['n_images']} | "
            f"{r['max_abs_d_score']:.2e} | {r['spearman']:.4f} | {r['max_abs_d_map']:.2e} | "
            f"{r['anomalib_s_per_img']:.3f} | {r['iadbench_s_per_img']:.3f} |"
        )
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / stem}.csv and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
