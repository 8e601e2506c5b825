"""WinCLIP: ours beside anomalib 2.7.0's ``WinClipModel`` at equal weights.

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
* input (``--inputs``): ``shared`` feeds both models anomalib's own pre-processing (torchvision
  ``Resize(240, bicubic, antialias)`` on the float image + CLIP mean/std) -> isolates the method;
  ``own`` gives ours iadbench's pre-processing (``--our-resample``) -> the end-to-end difference.

Our side is iadbench's WinCLIP maths (``iadbench.methods.winclip.windows`` + ``ClipEncoder``),
the same calls ``WinClip.fit``/``score`` make on their cached outputs, without the Snakemake
pipeline or the disk cache.
"""

from __future__ import annotations

import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from .common import print_row, row, save_fixture

REFERENCE = "anomalib WinClipModel"
ARCH = "ViT-B-16-plus-240"
BACKBONE = "clip_vit_b16_plus_240"
SIZE = 240
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def add_arguments(ap) -> None:
    g = ap.add_argument_group("winclip")
    g.add_argument("--shots", nargs="+", type=int, default=[0, 1, 2])
    g.add_argument("--inputs", nargs="+", default=["shared", "own"], choices=["shared", "own"])
    g.add_argument("--our-resample", default="bicubic", choices=["bilinear", "bicubic"])
    g.add_argument("--our-prompts", default="winclip_anomalib")
    g.add_argument("--no-fix-windows", action="store_true")


def random_weights(path: Path, seed: int) -> dict[str, torch.Tensor]:
    """The random ViT-B-16-plus-240 both sides load: open_clip's init under a fixed seed."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(ARCH, pretrained=None)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)
    return state


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


def run(args, data) -> list[dict]:
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

    import anomalib

    reference = f"anomalib {anomalib.__version__} WinClipModel" + (
        "" if not args.no_fix_windows else " (window pass as shipped)"
    )
    rows = []
    for cat, (test, train) in data.items():
        class_name = cat.replace("_", " ")
        images = [im for _, im in test]
        a_test = anomalib_input(images)
        for input_mode in args.inputs:
            shared = input_mode == "shared"
            o_test = a_test if shared else our_input(images, encoder, args.our_resample)
            for k in args.shots:
                a_refs = anomalib_input(train[:k]) if k else None
                o_refs = None
                if k:
                    o_refs = a_refs if shared else our_input(train[:k], encoder, args.our_resample)
                # fresh embeddings each setting: setup() keeps earlier references otherwise
                model.k_shot, model.reference_images = 0, None
                a_s, a_m, a_t = run_anomalib(model, class_name, a_refs, a_test)
                o_s, o_m, o_t, n_sent = run_ours(
                    encoder, class_name, o_refs, o_test, args.our_prompts
                )
                resample = "anomalib tensor" if shared else f"PIL {args.our_resample}"
                r = row(
                    category=cat,
                    method="winclip",
                    reference=reference,
                    setting=f"{k}-shot, input {input_mode}",
                    ours=(o_s, o_m, o_t),
                    theirs=(a_s, a_m, a_t),
                    switches=(
                        f"prompts {args.our_prompts} ({n_sent[0]}+{n_sent[1]}), "
                        f"normalize_each false, include_image true, resize {resample}"
                    ),
                )
                print_row(r)
                rows.append(r)
    if args.write_fixture:
        write_fixture(args.weights_seed, not args.no_fix_windows)
    return rows


# --------------------------------------------------------------------------- CI fixture

# Two demo images (one good, one defective) and one reference image, at 64 px, resized to 240
# by anomalib's pre-processor for both sides; anomalib's own arch (its WinClipModel hard-codes
# ViT-B-16-plus-240) with random weights; its prompt ensemble reduced to its first template, so
# the text tower encodes 11 sentences instead of 231 (CI runs on 2 cores).
FIXTURE = {"category": "brick", "n_test": 2, "n_train": 1, "size": 64, "shots": [0, 1]}
MAP_STEP = 4  # maps stored at every 4th pixel (60 x 60 of 240 x 240): the fixture stays small


def reduced_prompts() -> dict[str, list[str]]:
    """anomalib's states around its first template, as a prompt mapping with ``{}`` kept."""
    from anomalib.models.image.winclip import prompting

    template = prompting.TEMPLATES[0]
    return {
        "normal": [template.format(s) for s in prompting.NORMAL_STATES],
        "anomalous": [template.format(s) for s in prompting.ANOMALOUS_STATES],
    }


def write_fixture(seed: int, fix_windows: bool = True) -> None:
    """``tests/fixtures/reference/winclip.{npz,json}``: anomalib's scores and (subsampled) maps,
    zero-shot and 1-shot, with the images and the sentences, so CI checks ours without it.

    The weights are not stored: ``load_clip(BACKBONE, "random", seed=seed)`` rebuilds them, and
    that they equal the harness's ``random_weights`` is asserted here.
    """
    import anomalib
    import open_clip
    from anomalib.models.image.winclip import torch_model

    from iadbench.clip.encoder import load_clip

    from .lite0 import fixture_images

    f = FIXTURE
    test, train = fixture_images(f["category"], f["n_train"], f["n_test"], f["size"])
    with tempfile.TemporaryDirectory() as tmp:
        state = random_weights(Path(tmp) / "w.pt", seed)
    encoder = load_clip(BACKBONE, "random", seed=seed)
    ours_state = encoder.model.state_dict()
    assert all(torch.equal(ours_state[k], v) for k, v in state.items()), "random weights differ"
    model = anomalib_model(state, fix_windows)
    prompts = reduced_prompts()
    real = torch_model.create_prompt_ensemble
    # setup() looks the name up in its module at each call; restored below
    torch_model.create_prompt_ensemble = lambda name: tuple(
        [s.replace("{}", name) for s in prompts[k]] for k in ("normal", "anomalous")
    )
    arrays = {"test": np.stack(test), "train": np.stack(train)}
    class_name = f["category"]
    x = anomalib_input(test)
    try:
        for k in f["shots"]:
            refs = anomalib_input(train[:k]) if k else None
            model.k_shot, model.reference_images = 0, None
            a_s, a_m, _ = run_anomalib(model, class_name, refs, x)
            o_s, o_m, _, n = run_ours(encoder, class_name, refs, x, prompts)
            arrays[f"shot{k}_scores"] = a_s.astype(np.float32)
            arrays[f"shot{k}_maps"] = a_m[:, ::MAP_STEP, ::MAP_STEP].astype(np.float32)
            print(
                f"fixture winclip {k}-shot ({n[0]}+{n[1]} sentences): max|dscore| "
                f"{np.abs(o_s - a_s).max():.3g} max|dmap| {np.abs(o_m - a_m).max():.3g}"
            )
    finally:
        torch_model.create_prompt_ensemble = real
    meta = {
        "reference": f"anomalib {anomalib.__version__} (PyPI) WinClipModel"
        + (", _get_window_embeddings corrected (anomalib #2571)" if fix_windows else ""),
        "open_clip": open_clip.__version__,
        "arch": ARCH,
        "backbone": BACKBONE,
        "weights": f"random: load_clip({BACKBONE!r}, 'random', seed={seed}) = open_clip "
        f"create_model({ARCH!r}, pretrained=None) under torch.manual_seed({seed})",
        "seed": seed,
        "class_name": class_name,
        "prompts": prompts,
        "input": "anomalib's pre-processing for both: Resize(240, bicubic, antialias) on the "
        "float image + CLIP mean/std",
        "images": f"embedded demo {class_name}: {f['n_test']} test (1 good, 1 defective), "
        f"{f['n_train']} reference, {f['size']} px, stored in the npz",
        "shots": f["shots"],
        "map_step": MAP_STEP,
        "our_settings": "prompts = the mapping above, normalize_each false, include_image true, "
        "shot_block -1, shot_token_path ln_post, windows 2 and 3, temperature 0.07",
        "command": ".venv-compare/bin/python benchmarks/compare_reference.py --methods winclip "
        "--write-fixture",
    }
    save_fixture("winclip", arrays, meta)
