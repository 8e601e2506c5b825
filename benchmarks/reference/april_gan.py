"""APRIL-GAN: ours beside the authors' VAND-APRIL-GAN code (``ByChelsea/VAND-APRIL-GAN``).

Their code is imported from a checkout (``--april-gan-repo PATH``); nothing of it is copied here.
What is compared, at equal weights:

* weights: one random CLIP state dict (open_clip's init through iadbench's ``load_clip(...,
  "random", seed=--weights-seed)``), loaded into their model (their bundled, modified
  open_clip, ``create_model(arch, size, pretrained=None)``) with ``load_state_dict``, and the
  same random linear adapters (``nn.Linear(width, embed_dim)`` x 4 built under
  ``torch.manual_seed(--weights-seed + 1)``) into their ``LinearLayer`` and our
  ``AprilGanHead.linear``; every tensor is checked equal.
* position grid: a model run away from its native size needs its position grid resampled; they
  use their ``resize_pos_embed`` (bicubic, antialias), we the backbone's ``interpolation``
  (``--our-interpolation``, default ``bicubic_antialias``: theirs). ``--april-gan-positions
  shared`` copies theirs into ours (isolates the method), ``own`` keeps ours.
* activation: their factory builds ``CLIP(**json_config)`` whenever ``image_size`` differs from
  the config's (518 vs 336), so their published runs use nn.GELU even with OpenAI weights (which
  were trained with QuickGELU). ``--their-gelu ours`` (default) gives their model our backbone's
  activation (``force_quick_gelu`` when ours is QuickGELU: ``clip_vit_l14_336`` takes the OpenAI
  tag's; ``clip_tiny`` has GELU); ``gelu`` keeps what their factory builds.
* input (``--april-gan-inputs``): ``shared`` feeds both their ``preprocess`` tensor (PIL
  bicubic resize + CLIP mean/std); ``own`` gives ours iadbench's pre-processing with
  ``score_resize`` (``--our-score-resize``), i.e. what ``AprilGan.score`` reads.
* outputs: image scores (plain CLIP, their ``test.py`` glue), maps at the input size (sum over
  taps of the two-class softmax of ``align_corners`` upsampled logits), one training loss (focal
  + dice summed over taps, their ``FocalLoss``/``BinaryDiceLoss`` on their ``train.py`` glue)
  on a batch of the test images with synthetic masks, and one Adam step (lr 1e-3, betas 0.5,
  0.999) compared as the max |d| of the updated adapter weights.

Harness adaptations on their side, none touching the maths: ``pkg_resources`` (imported, unused
by ``prompt_ensemble.py``) is stubbed when absent; the float64 zero mask ``combine_img`` makes
for a normal image with ``mode="L"`` (refused by Pillow >= 11) is given as uint8 zeros; their
``VisionTransformer.forward`` moves an unused attention sum to ``'cuda'`` and reads the
attention of block 12 (so it fails on CPU and on models with < 12 blocks): ``Tensor.to('cuda')``
is made a no-op without CUDA and a zero attention is supplied when no block 12 exists. The
installed open_clip is set aside while their bundled one is imported, then restored.

The mosaic is checked apart: their ``MVTecDataset.combine_img`` on four files (picks scripted)
+ their transforms beside our ``mosaic_of: originals`` and ``crops``.

``--write-fixture`` (the dispatcher's option) stores the tiny arch's outputs (their side) in
``tests/fixtures/reference/april_gan.{npz,json}`` for ``tests/test_reference_april_gan.py``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .common import import_checkout, import_from, print_row, row, save_fixture

REFERENCE = "VAND-APRIL-GAN (authors' code)"
TEMPERATURE = 0.01  # their 100.0 * cos
# name -> (our registry backbone, open_clip architecture, input size, 1-indexed taps)
ARCHS = {
    "vitl14_336": ("clip_vit_l14_336", "ViT-L-14-336", 518, (6, 12, 18, 24)),
    # a cheaper real open_clip ViT (QuickGELU tag, 12 blocks) off its native size: 7x7 -> 10x10
    "vitb32": ("clip_vit_b32", "ViT-B-32", 320, (3, 6, 9, 12)),
    "tiny": ("clip_tiny", "iadbench-tiny-vit", 64, (1, 2, 3, 4)),
}
LR, BETAS = 1e-3, (0.5, 0.999)


def add_arguments(ap) -> None:
    g = ap.add_argument_group("april_gan")
    g.add_argument("--april-gan-repo", type=Path, help="checkout of ByChelsea/VAND-APRIL-GAN")
    g.add_argument("--april-gan-archs", nargs="+", default=["tiny"], choices=sorted(ARCHS))
    g.add_argument("--april-gan-inputs", nargs="+", default=["shared", "own"],
                   choices=["shared", "own"])  # fmt: skip
    g.add_argument("--april-gan-positions", nargs="+", default=["shared"],
                   choices=["shared", "own"])  # fmt: skip
    g.add_argument("--our-interpolation", default="bicubic_antialias",
                   choices=["bilinear", "bicubic", "bicubic_antialias"])  # fmt: skip
    g.add_argument("--our-score-resize", default="bicubic", choices=["bilinear", "bicubic"])
    g.add_argument("--our-focal-smooth", type=float, default=1e-5, help="0: plain focal loss")
    g.add_argument("--their-gelu", default="ours", choices=["ours", "gelu"],
                   help="ours: their model gets our backbone's activation; gelu: nn.GELU, what "
                   "their factory builds at a non-native size")  # fmt: skip


# --------------------------------------------------------------------------- shared recipe


def random_adapters(width: int, dim: int, n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """The adapters both sides load: ``n`` ``nn.Linear(width, dim)`` built in order under
    ``torch.manual_seed(seed + 1)`` (what ``LinearLayer`` builds, so the recipe is theirs)."""
    torch.manual_seed(seed + 1)
    layers = [torch.nn.Linear(width, dim) for _ in range(n)]
    return [{k: v.detach().clone() for k, v in lin.state_dict().items()} for lin in layers]


def synthetic_masks(n: int, size: int) -> torch.Tensor:
    """(n, size, size) 0/1 masks: image i (i odd) gets a square, even ones are normal; fixed, so
    both sides and the fixture see the same targets."""
    masks = torch.zeros(n, size, size)
    for i in range(1, n, 2):
        lo = size // 4 + (i * size) // 16
        masks[i, lo : lo + size // 4, size // 4 : size // 2] = 1.0
    return masks


def our_encoder(arch: str, weights: Path | None, seed: int, interpolation: str):
    """Our CLIP at the arch's input size: ``weights`` file (or random from ``seed``)."""
    from iadbench.clip.encoder import load_clip

    backbone, _, size, _ = ARCHS[arch]
    return load_clip(
        backbone, str(weights) if weights else "random", input_size=size, seed=seed,
        interpolation=interpolation,
    )  # fmt: skip


def our_head(encoder, arch: str, adapters):
    from iadbench.methods.april_gan.method import AprilGanHead

    taps = [t - 1 for t in ARCHS[arch][3]]
    head = AprilGanHead(encoder, taps, TEMPERATURE)
    for lin, state in zip(head.linear, adapters, strict=True):
        lin.load_state_dict(state)
    return head.eval()


def our_protos(encoder, class_name: str) -> torch.Tensor:
    from iadbench.clip.encoder import text_prototypes
    from iadbench.clip.prompts import sentences

    normal, anomalous = sentences("april_gan", class_name)
    return text_prototypes(encoder, normal, anomalous, True)


def our_input(images, encoder, resample: str) -> torch.Tensor:
    """What ``AprilGan.score`` feeds the encoder: geometry (resize = crop = input size) with
    the ``score_resize`` filter, then the encoder's mean/std."""
    from iadbench.data.images import Geometry
    from iadbench.features.extract import normalise_images

    size = encoder.preprocessing.input_size[0]
    geo = Geometry(size, size)
    return normalise_images([geo.image(im, resample) for im in images], encoder.preprocessing)


def run_ours(head, protos, pixels, masks, focal_smooth: float):
    """Scores, maps, loss and the adapters after one Adam step, as ``AprilGan`` computes them."""
    from iadbench.methods.april_gan.method import AprilGan

    entry = {"kind": "april_gan", "backbone": "x", "train_on": "x", "focal_smooth": focal_smooth}
    method = AprilGan(entry, device="cpu")
    size = tuple(pixels.shape[-2:])
    batch_protos = protos.expand(len(pixels), -1, -1)
    start = time.perf_counter()
    with torch.no_grad():
        image_logits, taps = head(pixels, batch_protos)
        scores = image_logits.float().softmax(1)[:, 1]
        maps = method._map(head, taps, size)  # noqa: SLF001
    seconds = (time.perf_counter() - start) / len(pixels)
    head.train()
    classes = torch.zeros(len(pixels), dtype=torch.long)
    loss = method._loss(head, protos[None], (pixels, masks, classes))  # noqa: SLF001
    opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=LR, betas=BETAS)
    opt.zero_grad()
    loss["loss"].backward()
    grads = [
        {"weight": lin.weight.grad.clone(), "bias": lin.bias.grad.clone()} for lin in head.linear
    ]
    opt.step()
    head.eval()
    stepped = [{k: v.detach().clone() for k, v in lin.state_dict().items()} for lin in head.linear]
    return scores.double().numpy(), maps, seconds, float(loss["loss"].detach()), stepped, grads


# --------------------------------------------------------------------------- their side


@contextlib.contextmanager
def their_code(repo: Path):
    """Their checkout importable (their bundled ``open_clip`` first), the installed one restored
    afterwards; CPU/small-model adaptations of dead code in their ViT forward (see docstring)."""
    saved = {k: v for k, v in sys.modules.items() if k == "open_clip" or k.startswith("open_clip.")}
    for name in saved:
        del sys.modules[name]
    stubbed = "pkg_resources" not in sys.modules
    if stubbed:
        try:
            import pkg_resources  # noqa: F401

            stubbed = False
        except ImportError:
            sys.modules["pkg_resources"] = types.SimpleNamespace(packaging=None)
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and args[0] == "cuda" and not torch.cuda.is_available():
            return self
        return real_to(self, *args, **kwargs)

    torch.Tensor.to = to
    try:
        with import_checkout(repo, "--april-gan-repo", "model.py") as path:
            transformer = import_from(path, "open_clip.transformer")
            forward = transformer.Transformer.forward

            def padded(self, x, out_layers=(3, 6, 9), attn_mask=None):
                out, attn, tokens = forward(self, x, list(out_layers), attn_mask)
                if not attn:  # fewer than 12 blocks: their unused attention sum needs one
                    attn = [x.new_zeros(x.shape[1], 1, x.shape[0])]
                return out, attn, tokens

            transformer.Transformer.forward = padded
            yield path
    finally:
        torch.Tensor.to = real_to
        for name in [k for k in sys.modules if k == "open_clip" or k.startswith("open_clip.")]:
            del sys.modules[name]
        sys.modules.update(saved)
        if stubbed:
            sys.modules.pop("pkg_resources", None)


def their_model(path: Path, arch: str, state: dict, adapters, quick_gelu: bool):
    """Their CLIP at the arch's size with ``state`` (positions resized their way), their
    ``LinearLayer`` with ``adapters``, their tokenizer and ``preprocess``."""
    open_clip = import_from(path, "open_clip")
    factory = import_from(path, "open_clip.factory")
    clip_model = import_from(path, "open_clip.model")
    layer_mod = import_from(path, "model")
    from iadbench.backbones.registry import OPEN_CLIP_CONFIGS

    _, name, size, taps = ARCHS[arch]
    if name in OPEN_CLIP_CONFIGS:  # their LinearLayer takes a name without "ViT" for a ResNet
        cfg = json.loads(json.dumps(OPEN_CLIP_CONFIGS[name]))
        name = f"ViT-{name}"
        factory._MODEL_CONFIGS.setdefault(name, cfg)  # noqa: SLF001
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, size, pretrained=None, force_quick_gelu=quick_gelu
    )
    state = dict(state)
    clip_model.resize_pos_embed(state, model)  # theirs: bicubic, antialias (no-op at native)
    model.load_state_dict(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    cfg = factory.get_model_config(name)
    layer = layer_mod.LinearLayer(cfg["vision_cfg"]["width"], cfg["embed_dim"], len(taps), name)
    for lin, adapter in zip(layer.fc, adapters, strict=True):
        lin.load_state_dict(adapter)
    return model.eval(), layer, open_clip.get_tokenizer(name), preprocess


def their_inputs(preprocess, images) -> torch.Tensor:
    return torch.stack([preprocess(Image.fromarray(im)) for im in images])


def their_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Their target transform (Resize bilinear, ToTensor) of the 0/255 mask, then > 0.5."""
    import torchvision.transforms as T

    tf = T.Compose([T.Resize((size, size)), T.CenterCrop(size), T.ToTensor()])
    out = []
    for m in masks:
        t = tf(Image.fromarray((m.numpy() * 255).astype(np.uint8), mode="L"))[0]
        out.append((t > 0.5).float())
    return torch.stack(out)


def run_theirs(path, model, layer, tokenizer, class_name, pixels, masks, taps):
    """Their ``test.py`` / ``train.py`` glue on their model: scores, maps, loss, one step."""
    prompt = import_from(path, "prompt_ensemble")
    loss_mod = import_from(path, "loss")
    size = pixels.shape[-1]
    with torch.no_grad():
        text = prompt.encode_text_with_prompt_ensemble(model, [class_name], tokenizer, "cpu")
    text = text[class_name]  # (D, 2)

    def maps_of(patch_tokens):
        out = []
        for tokens in layer(patch_tokens):
            tokens = tokens / tokens.norm(dim=-1, keepdim=True)
            logits = 100.0 * tokens @ text
            b, n, c = logits.shape
            h = int(np.sqrt(n))
            up = F.interpolate(
                logits.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear",
                align_corners=True,
            )  # fmt: skip
            out.append(torch.softmax(up, dim=1))
        return out

    start = time.perf_counter()
    with torch.no_grad():
        features, patch_tokens = model.encode_image(pixels, list(taps))
        features = features / features.norm(dim=-1, keepdim=True)
        scores = (100.0 * features @ text).softmax(dim=-1)[:, 1]
        maps = torch.stack([m[:, 1] for m in maps_of(patch_tokens)]).sum(0)
    seconds = (time.perf_counter() - start) / len(pixels)
    # one training step on this batch (train.py): focal + dice per tap, Adam(1e-3, (0.5, .999))
    focal, dice = loss_mod.FocalLoss(), loss_mod.BinaryDiceLoss()
    opt = torch.optim.Adam(list(layer.parameters()), lr=LR, betas=BETAS)
    with torch.no_grad():
        _, patch_tokens = model.encode_image(pixels, list(taps))
    loss = 0
    for m in maps_of(patch_tokens):
        loss = loss + focal(m, masks) + dice(m[:, 1], masks)
    opt.zero_grad()
    loss.backward()
    grads = [{"weight": lin.weight.grad.clone(), "bias": lin.bias.grad.clone()} for lin in layer.fc]
    opt.step()
    stepped = [{k: v.detach().clone() for k, v in lin.state_dict().items()} for lin in layer.fc]
    return scores.double().numpy(), maps.numpy(), seconds, float(loss.detach()), stepped, grads


def mosaic_check(path: Path, images, size: int, preprocessing) -> dict[str, float]:
    """Their ``MVTecDataset.combine_img`` (four files of a category, picks scripted instead of
    drawn) + their preprocess / target transform, beside our ``mosaic_of_originals`` (VAND's,
    ``mosaic_of: originals``) and ``mosaic`` of the resized crops (``mosaic_of: crops``):
    max |d| of the normalised pixels and the count of mask pixels that differ."""
    import os

    from iadbench.clip.train_data import mosaic, mosaic_of_originals
    from iadbench.data.images import Geometry
    from iadbench.features.extract import normalise_images

    dataset = import_from(path, "dataset")
    images = [images[i % len(images)] for i in range(4)]  # four tiles, fewer images repeat
    masks = [m.numpy() > 0 for m in synthetic_masks(4, images[0].shape[0])]
    picks = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            defect = "good" if not mask.any() else "square"
            (root / "obj" / "test" / defect).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / "obj" / "test" / defect / f"{i:03d}.png")
            if mask.any():
                gt = root / "obj" / "ground_truth" / defect
                gt.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(gt / f"{i:03d}_mask.png")
            picks += [defect, f"{i:03d}.png"]
        script = iter(picks)

        def choice(options):
            pick = next(script)
            assert pick in options, (pick, options)
            return pick

        def fromarray(array, mode=None):
            # their normal-image mask: float64 zeros as mode "L", which Pillow >= 11 refuses;
            # older Pillow read those zero bytes as a black mask, the image given here
            if mode == "L" and array.dtype.kind == "f":
                assert not array.any()
                array = array.astype(np.uint8)
            return Image.fromarray(array, mode)

        real_random, real_image = dataset.random, dataset.Image
        dataset.random = types.SimpleNamespace(choice=choice, random=real_random.random)
        dataset.Image = types.SimpleNamespace(fromarray=fromarray, open=Image.open, new=Image.new)
        try:
            data = object.__new__(dataset.MVTecDataset)
            data.root = str(root)
            image, mask = data.combine_img("obj")
        finally:
            dataset.random, dataset.Image = real_random, real_image
        assert sorted(os.listdir(root / "obj" / "test"))  # their listdir saw our layout
    open_clip = import_from(path, "open_clip.transform")
    preprocess = open_clip.image_transform(size, is_train=False)
    import torchvision.transforms as T

    target = T.Compose([T.Resize((size, size)), T.CenterCrop(size), T.ToTensor()])
    t_pixels = preprocess(image)
    t_mask = (target(mask)[0] > 0.5).numpy()
    geo = Geometry(size, size)
    out = {}
    for name, (o_image, o_mask) in {
        "originals": mosaic_of_originals(images, masks, geo, "bicubic", "bilinear"),
        "crops": mosaic(
            [geo.image(im, "bicubic") for im in images],
            [geo.mask(m, "bilinear") for m in masks],
            "bicubic",
        ),
    }.items():
        o_pixels = normalise_images([o_image], preprocessing)[0]
        out[f"{name}_pixels"] = float((o_pixels - t_pixels).abs().max())
        out[f"{name}_mask_pixels"] = int((o_mask != t_mask).sum())
    return out


# --------------------------------------------------------------------------- rows


def step_difference(ours, theirs) -> float:
    return max(
        float((o[k] - t[k]).abs().max()) for o, t in zip(ours, theirs, strict=True) for k in o
    )


def grad_difference(ours, theirs) -> float:
    """Max |d| of the adapters' gradients relative to their largest gradient. Adam's first step
    is lr * g / (|g| + 1e-8), about +-lr wherever |g| >> 1e-8, so float rounding of a gradient
    near 1e-8 moves that weight's step by up to lr: the gradients are the tighter comparison."""
    scale = max(float(t[k].abs().max()) for t in theirs for k in t)
    return step_difference(ours, theirs) / scale


def run(args, data) -> list[dict]:
    rows = []
    for arch in args.april_gan_archs:
        rows += run_arch(args, data, arch)
    return rows


def run_arch(args, data, arch: str) -> list[dict]:
    backbone, name, size, taps = ARCHS[arch]
    seed = args.weights_seed
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / f"{name}_seed{seed}.pt"
        # the native-size state (before any position resampling): what a checkpoint holds
        from iadbench.backbones.loader import build_clip_model
        from iadbench.backbones.registry import spec_for
        from iadbench.backbones.weights import resolve_weights

        spec = spec_for(backbone)
        model, _ = build_clip_model(spec, resolve_weights("random", spec), seed)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save(state, weights)
        del model
        width, dim = state["visual.conv1.weight"].shape[0], state["visual.proj"].shape[1]
        adapters = random_adapters(width, dim, len(taps), seed)
        print(
            f"april_gan {arch}: random {name} (iadbench load_clip random, seed {seed}, "
            f"{sum(v.numel() for v in state.values()) / 1e6:.1f} M values) at {size} px; "
            f"adapters Linear({width}->{dim}) x {len(taps)} under manual_seed({seed + 1})"
        )
        encoder = our_encoder(arch, weights, seed, args.our_interpolation)
        quick = type(encoder.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
        activation = "QuickGELU" if quick and args.their_gelu == "ours" else "GELU"
        # their side once: it does not depend on our settings
        outputs = {}
        with their_code(args.april_gan_repo) as path:
            model, layer, tokenizer, preprocess = their_model(
                path, arch, state, adapters, activation == "QuickGELU"
            )
            their_positions = model.state_dict()["visual.positional_embedding"].clone()
            ours_state = encoder.model.state_dict()
            for key, value in model.state_dict().items():
                if key != "visual.positional_embedding":
                    assert torch.equal(ours_state[key], value), key
            for cat, (test, _train) in data.items():
                images = [im for _, im in test]
                t_pixels = their_inputs(preprocess, images)
                gt = their_masks(synthetic_masks(len(images), size), size)
                theirs = run_theirs(
                    path, model, layer, tokenizer, cat.replace("_", " "), t_pixels, gt, taps
                )
                mosaics = mosaic_check(path, images, size, encoder.preprocessing)
                print(
                    "  mosaic (their combine_img + preprocess vs ours): "
                    + ", ".join(f"{k} {v:.2g}" for k, v in mosaics.items())
                )
                outputs[cat] = (images, t_pixels, gt, theirs, mosaics)
            del model, layer
        rows = []
        protos_of: dict[str, torch.Tensor] = {}  # the text tower ignores the position grid
        for pos_mode in args.april_gan_positions:
            encoder = our_encoder(arch, weights, seed, args.our_interpolation)
            if pos_mode == "shared":  # both run their resize of the native grid
                encoder.visual.positional_embedding.data.copy_(their_positions)
            d_pos = float((encoder.visual.positional_embedding - their_positions).abs().max())
            for cat, (images, t_pixels, gt, theirs, mosaics) in outputs.items():
                if cat not in protos_of:
                    protos_of[cat] = our_protos(encoder, cat.replace("_", " "))
                protos = protos_of[cat]
                for input_mode in args.april_gan_inputs:
                    pixels = (
                        t_pixels
                        if input_mode == "shared"
                        else our_input(images, encoder, args.our_score_resize)
                    )
                    head = our_head(encoder, arch, adapters)
                    ours = run_ours(head, protos, pixels, gt, args.our_focal_smooth)
                    d_step = step_difference(ours[4], theirs[4])
                    d_grad = grad_difference(ours[5], theirs[5])
                    r = row(
                        category=cat,
                        method="april_gan",
                        reference=REFERENCE,
                        setting=f"{arch} {size}px, input {input_mode}, positions {pos_mode}",
                        ours=ours[:3],
                        theirs=theirs[:3],
                        switches=(
                            f"score_resize {args.our_score_resize}, focal_smooth "
                            f"{args.our_focal_smooth:g}, "
                            f"interpolation {args.our_interpolation} (positions d {d_pos:.1e}), "
                            f"their activation {activation} (ours "
                            f"{'QuickGELU' if quick else 'GELU'}); loss d "
                            f"{abs(ours[3] - theirs[3]):.1e}, gradient d {d_grad:.1e} (relative), "
                            f"Adam step d {d_step:.1e}; "
                            f"mosaic_of originals: pixels d {mosaics['originals_pixels']:.1e}, "
                            f"mask px d {mosaics['originals_mask_pixels']} (crops: "
                            f"{mosaics['crops_pixels']:.1e}, {mosaics['crops_mask_pixels']})"
                        ),
                    )
                    print_row(r)
                    print(
                        f"  loss ours {ours[3]:.7f} theirs {theirs[3]:.7f}; adapters after "
                        f"one Adam step max|d| {d_step:.2e}; gradients max|d| / max|g| "
                        f"{d_grad:.2e}; positions max|d| {d_pos:.2e}"
                    )
                    rows.append(r)
                if args.write_fixture and arch == "tiny" and pos_mode == "shared":
                    write_fixture(args, cat, images, theirs, gt)
        return rows


def write_fixture(args, cat: str, images, theirs, gt) -> None:
    """Their tiny-arch outputs on the shared input, for the CI test (ours only)."""
    from .common import commit

    scores, maps, _, loss, stepped, _ = theirs
    arrays = {
        "images": np.stack(images).astype(np.uint8),
        "masks": gt.numpy().astype(np.uint8),
        "scores": scores.astype(np.float32),
        "maps": maps.astype(np.float32),
        "loss": np.float32(loss),
        "stepped_weight": np.stack([s["weight"].numpy() for s in stepped]).astype(np.float32),
        "stepped_bias": np.stack([s["bias"].numpy() for s in stepped]).astype(np.float32),
    }
    repo = Path(args.april_gan_repo).resolve()
    try:
        import subprocess

        their_commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
            ).stdout.strip()
            or "unknown (not a git work tree)"
        )
    except OSError:
        their_commit = "unknown"
    meta = {
        "reference": "https://github.com/ByChelsea/VAND-APRIL-GAN",
        "reference_commit": their_commit,
        "written_by": f"benchmarks/compare_reference.py --methods april_gan --write-fixture "
        f"(iadbench {commit()})",
        "backbone": ARCHS["tiny"][0],
        "open_clip_arch": ARCHS["tiny"][1],
        "input_size": ARCHS["tiny"][2],
        "taps_1_indexed": list(ARCHS["tiny"][3]),
        "clip_weights": f"iadbench load_clip('clip_tiny', 'random', seed={args.weights_seed})",
        "adapters": f"torch.manual_seed({args.weights_seed + 1}); nn.Linear(width, embed_dim) "
        "x 4, in order",
        "weights_seed": args.weights_seed,
        "class_name": cat.replace("_", " "),
        "images": f"iadbench demo '{cat}', {len(images)} test images at {args.image_size} px "
        "(stored in the npz), their preprocess: PIL bicubic to 64 + CLIP mean/std",
        "masks": "synthetic squares (benchmarks/reference/april_gan.py synthetic_masks), their "
        "target transform",
        "their_gelu": args.their_gelu,
        "prompts": "april_gan (7 normal / 5 anomalous states x 35 templates)",
        "optimiser": f"Adam lr {LR}, betas {BETAS}, one step on the batch",
    }
    save_fixture("april_gan", arrays, meta)
