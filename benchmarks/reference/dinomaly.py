"""Dinomaly: ours beside anomalib 2.7.0's ``DinomalyModel`` at equal random weights.

* weights: one random DINOv2-reg encoder (``--dinomaly-arch``: timm
  ``vit_<arch>_patch14_reg4_dinov2``, our registry's ``dinov2_vit?14_reg4`` with ``weights:
  random``, seeded by ``--weights-seed``) and our randomly initialised bottleneck + decoder
  (the paper's trunc-normal init, seed ``--weights-seed``); anomalib's model is built with
  ``pretrained=False`` (nothing downloaded) and gets every tensor copied across by name, then
  checked equal.
* input: both models get the same tensors, our pre-processing (``--dinomaly-resize`` square
  bilinear resize, ``--dinomaly-crop`` centre crop, ImageNet mean/std).
* our switches that reproduce anomalib: ``mlp_bias: false`` (anomalib's MLPs have no biases;
  the paper's code has them), ``smooth_padding: reflect`` (kornia's blur; the paper's code
  zero-pads its Conv2d). The pos-embed resampling is the same on both sides (bicubic, no
  antialias: anomalib patches timm's function globally, ours calls it with antialias off).
* what is compared: image scores (mean of the top 1 % of the smoothed 256 map) and the smoothed
  256 maps (anomalib's returned map is the unsmoothed one at the input size; the harness applies
  anomalib's own resize + ``gaussian_blur`` to it); the loss at a training step (p at
  ``--dinomaly-step``) and the decoder gradients of one backward pass with the hard-mining hooks
  (dropout off on both sides so the noise is equal); one optimiser step: our torch-optimi
  StableAdamW vs anomalib's StableAdamW (AMSGrad on), parameters after the step.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from .common import print_row, row, save_fixture

ARCHS = {"small": "dinov2_vits14_reg4", "base": "dinov2_vitb14_reg4", "tiny": "dinov2_tiny_reg4"}
# our registry's dinov2_tiny_reg4: DINOv2-reg's layout (12 blocks, 4 registers) at width 48
TINY = {"embed_dim": 48, "num_heads": 3, "img_size": 112}


def add_arguments(ap) -> None:
    g = ap.add_argument_group("dinomaly")
    g.add_argument("--dinomaly-arch", default="small", choices=sorted(ARCHS))
    g.add_argument("--dinomaly-resize", type=int, default=256)
    g.add_argument("--dinomaly-crop", type=int, default=224)
    g.add_argument("--dinomaly-step", type=int, default=500, help="global step of the loss check")


@contextlib.contextmanager
def no_download(tiny: bool = False):
    """timm.create_model with pretrained forced off while anomalib builds its encoder; ``tiny``:
    the ``dinov2_tiny_reg4`` sizes, in timm's call and in anomalib's architecture table."""
    import timm
    from anomalib.models.image.dinomaly.torch_model import DinomalyModel

    real, table = timm.create_model, DinomalyModel.__dict__["_get_architecture_config"]

    def create(name, *args, **kwargs):
        kwargs["pretrained"] = False
        return real(name, *args, **(kwargs | (TINY if tiny else {})))

    timm.create_model = create
    if tiny:
        sizes = {"embed_dim": TINY["embed_dim"], "num_heads": TINY["num_heads"]}
        config = {**sizes, "target_layers": [2, 3, 4, 5, 6, 7, 8, 9]}
        DinomalyModel._get_architecture_config = staticmethod(lambda name, layers: dict(config))
    try:
        yield
    finally:
        timm.create_model = real
        DinomalyModel._get_architecture_config = table


def our_net(arch: str, seed: int):
    from iadbench.methods.dinomaly.method import build_encoder
    from iadbench.methods.dinomaly.model import Dinomaly, default_taps

    encoder, mean, std, _ = build_encoder(ARCHS[arch], "random", seed)
    torch.manual_seed(seed)
    taps = default_taps(len(encoder.blocks))
    net = Dinomaly(encoder, taps, [[0, 1, 2, 3], [4, 5, 6, 7]], 8, 0.2, mlp_bias=False)
    return net.eval(), mean, std


def anomalib_net(arch: str, ours):
    """anomalib's DinomalyModel with every tensor of ours copied in (names mapped)."""
    from anomalib.models.image.dinomaly.torch_model import DinomalyModel

    with no_download(tiny=arch == "tiny"):
        name = "small" if arch == "tiny" else arch
        model = DinomalyModel(encoder_name=f"vit_{name}_patch14_reg4_dinov2")
    model.encoder.feature_extractor.load_state_dict(ours.encoder.state_dict())
    mapped = {}
    for key, value in ours.state_dict().items():
        if key.startswith("encoder."):
            continue
        mapped[key.replace("bottleneck.", "bottleneck.0.")] = value
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.startswith(("encoder.", "gaussian_blur."))]
    assert not missing and not unexpected, (missing, unexpected)
    theirs = dict(model.state_dict())
    for key, value in mapped.items():
        assert torch.equal(theirs[key], value), key
    return model.eval()


def inputs(images, resize: int, crop: int, mean, std) -> torch.Tensor:
    from PIL import Image

    from iadbench.methods.dinomaly.method import centre_crop

    out = []
    for im in images:
        rgb = np.asarray(Image.fromarray(im).resize((resize, resize), Image.BILINEAR))
        out.append(centre_crop(rgb, crop))
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def run_ours(net, x, padding: str):
    from iadbench.methods.dinomaly.model import anomaly_maps, gaussian_kernel

    start = time.perf_counter()
    with torch.no_grad():
        enc, dec = net(x)
        scores, maps = anomaly_maps(
            enc, dec, x.shape[-1], 256, gaussian_kernel(5, 4.0), 0.01, padding
        )
    seconds = (time.perf_counter() - start) / len(x)
    return scores.double().numpy(), maps.double().numpy(), seconds


def run_anomalib(model, x):
    import torch.nn.functional as F

    start = time.perf_counter()
    with torch.no_grad():
        out = model(x)
    seconds = (time.perf_counter() - start) / len(x)
    smoothed = model.gaussian_blur(
        F.interpolate(out.anomaly_map, size=256, mode="bilinear", align_corners=False)
    )[:, 0]
    return out.pred_score.double().numpy(), smoothed.double().numpy(), seconds


def training_checks(net, model, x, step: int) -> dict:
    """Loss, decoder gradients and one optimiser step, each side with its own code."""
    from anomalib.models.image.dinomaly.components.optimizer import StableAdamW as TheirAdam
    from optimi import StableAdamW

    from iadbench.methods.dinomaly.model import hard_mining_loss, p_at

    net.train()
    model.train()
    for m in [*net.modules(), *model.modules()]:  # dropout off: equal noise on both sides
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    enc, dec = net(x)
    ours = hard_mining_loss(enc, dec, p_at(step), 0.1)
    ours.backward()
    theirs = model(x, global_step=step)
    theirs.backward()
    ours_grads = {k: p.grad for k, p in net.named_parameters() if p.grad is not None}
    their_params = dict(model.named_parameters())
    d_grad = max(
        float((g - their_params[k.replace("bottleneck.", "bottleneck.0.")].grad).abs().max())
        for k, g in ours_grads.items()
    )
    # The optimisers on identical gradients (ours copied onto theirs): the first step's
    # sign-like update would otherwise amplify float noise in near-zero gradients. Then two
    # more steps with the gradients halved each time, where AMSGrad (anomalib, the paper) keeps
    # the larger second moment and torch-optimi (no AMSGrad) does not.
    pairs = [
        (q, their_params[k.replace("bottleneck.", "bottleneck.0.")])
        for k, q in net.named_parameters()
        if q.requires_grad
    ]
    kw = dict(lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-10)
    mine = StableAdamW([q for q, _ in pairs], triton=False, **kw)
    other = TheirAdam([t for _, t in pairs], amsgrad=True, **kw)
    grads = [q.grad.detach().clone() for q, _ in pairs]
    d_param = []
    for scale in (1.0, 0.5, 0.25):
        for (q, t), g in zip(pairs, grads):
            q.grad, t.grad = g * scale, g * scale
        mine.step()
        other.step()
        d_param.append(max(float((q - t).detach().abs().max()) for q, t in pairs))
    return {
        "loss_ours": float(ours),
        "loss_anomalib": float(theirs),
        "max_abs_d_grad": d_grad,
        "max_abs_d_param_after_step": d_param[0],
        "max_abs_d_param_after_3_steps": d_param[-1],
    }


def run(args, data) -> list[dict]:
    import anomalib

    net, mean, std = our_net(args.dinomaly_arch, args.weights_seed)
    model = anomalib_net(args.dinomaly_arch, net)
    reference = f"anomalib {anomalib.__version__} DinomalyModel"
    rows = []
    for cat, (test, _) in data.items():
        x = inputs([im for _, im in test], args.dinomaly_resize, args.dinomaly_crop, mean, std)
        theirs = run_anomalib(model, x)
        for padding in ("reflect", "zeros"):
            r = row(
                category=cat,
                method="dinomaly",
                reference=reference,
                setting=f"{args.dinomaly_arch} {args.dinomaly_crop}px pad={padding}",
                ours=run_ours(net, x, padding),
                theirs=theirs,
                switches=f"mlp_bias: false, smooth_padding: {padding}",
            )
            print_row(r)
            rows.append(r)
        checks = training_checks(net, model, x, args.dinomaly_step)
        print(
            f"dinomaly     {cat:10s} step {args.dinomaly_step}: loss ours {checks['loss_ours']:.8f}"
            f" anomalib {checks['loss_anomalib']:.8f}, max|dgrad| {checks['max_abs_d_grad']:.3g},"
            f" max|dparam| after one step {checks['max_abs_d_param_after_step']:.3g},"
            f" after 3 (halving gradients) {checks['max_abs_d_param_after_3_steps']:.3g}"
        )
        rows[-1]["switches"] += (
            f"; loss {checks['loss_ours']:.6g} vs {checks['loss_anomalib']:.6g}, "
            f"max|dgrad| {checks['max_abs_d_grad']:.2g}, "
            f"max|dparam| 1 step {checks['max_abs_d_param_after_step']:.2g}, "
            f"3 steps {checks['max_abs_d_param_after_3_steps']:.2g} (no AMSGrad)"
        )
        net.eval()
        model.eval()
    if args.write_fixture:
        write_fixture(args.weights_seed)
    return rows


# --------------------------------------------------------------------------- CI fixture

# 64 px demo images, resized to 64 and centre-cropped to 56 (a 4x4 grid: the tiny encoder's 8x8
# position grid is resampled); maps stored at every 4th pixel of the 256 px map
FIXTURE = {"category": "brick", "size": 64, "n_test": 2, "resize": 64, "crop": 56, "map_step": 4}


def write_fixture(seed: int) -> None:
    """``tests/fixtures/reference/dinomaly.{npz,json}``: anomalib's scores and smoothed maps on
    two demo images with the tiny random encoder + decoder that ``our_net("tiny", seed)``
    rebuilds (every tensor copied into anomalib's model and checked equal)."""

    import anomalib

    from .lite0 import fixture_images

    f = FIXTURE
    test, _ = fixture_images(f["category"], 0, f["n_test"], f["size"])
    net, mean, std = our_net("tiny", seed)
    model = anomalib_net("tiny", net)
    x = inputs(test, f["resize"], f["crop"], mean, std)
    a_s, a_m, _ = run_anomalib(model, x)
    o_s, o_m, _ = run_ours(net, x, "reflect")
    print(
        f"fixture dinomaly: max|dscore| {np.abs(o_s - a_s).max():.3g} "
        f"max|dmap| {np.abs(o_m - a_m).max():.3g}"
    )
    step = f["map_step"]
    arrays = {
        "test": np.stack(test),
        "scores": a_s.astype(np.float32),
        "maps": a_m[:, ::step, ::step].astype(np.float32),
    }
    meta = {
        "reference": f"anomalib {anomalib.__version__} (PyPI) DinomalyModel",
        "arch": f"timm vit_small_patch14_reg4_dinov2 with {TINY} (our registry's "
        f"{ARCHS['tiny']}), taps 2..9, fused [[0..3], [4..7]], 8 decoder blocks",
        "weights": f"random: our_net('tiny', {seed}) (encoder: build_encoder({ARCHS['tiny']!r}, "
        f"'random', {seed}); bottleneck + decoder: trunc-normal init after "
        f"torch.manual_seed({seed})), copied into anomalib's model",
        "seed": seed,
        "images": f"embedded demo {f['category']} at {f['size']} px: {f['n_test']} test (1 good, "
        "1 defective), stored in the npz",
        "input": f"ours for both: bilinear resize {f['resize']}, centre crop {f['crop']}, "
        "ImageNet mean/std",
        "map_step": step,
        "switches": {"mlp_bias": False, "smooth_padding": "reflect"},
        "command": ".venv-compare/bin/python benchmarks/compare_reference.py --methods dinomaly "
        "--dinomaly-arch tiny "
        "--n-test 2 --write-fixture",
    }
    save_fixture("dinomaly", arrays, meta)
