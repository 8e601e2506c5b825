"""APRIL-GAN against stored outputs of the authors' VAND-APRIL-GAN code at equal random weights.

``tests/fixtures/reference/april_gan.{npz,json}`` were written by
``benchmarks/compare_reference.py --methods april_gan --write-fixture`` from their code (their
bundled open_clip, ``LinearLayer``, ``prompt_ensemble``, ``FocalLoss``/``BinaryDiceLoss`` and the
glue of their ``test.py``/``train.py``). Here only our side runs: the same random CLIP
(``clip_tiny``, seed from the JSON), the same random adapters, the stored images through our
scoring pre-processing (``score_resize: bicubic``), and our scores, maps, training loss and one
Adam step are compared with theirs.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from iadbench.clip.encoder import load_clip, text_prototypes
from iadbench.clip.prompts import sentences
from iadbench.data.images import Geometry
from iadbench.features.extract import normalise_images
from iadbench.methods.april_gan.method import AprilGan, AprilGanHead
from iadbench.methods.clip_trained.trainer import focal_loss

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "april_gan"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference.common import load_fixture  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    return load_fixture("april_gan")


@pytest.fixture(scope="module")
def ours(reference):
    meta, ref = reference
    seed = int(meta["weights_seed"])
    torch.set_num_threads(2)
    encoder = load_clip(meta["backbone"], "random", seed=seed)
    size = int(meta["input_size"])
    assert encoder.preprocessing.input_size == (size, size)
    method = AprilGan({"kind": "april_gan", "backbone": "x", "train_on": "x"}, device="cpu")
    assert method.params.score_resize == "bicubic" and method.params.focal_smooth == 1e-5
    head = AprilGanHead(encoder, [t - 1 for t in meta["taps_1_indexed"]], 0.01)
    # the JSON's adapter recipe: nn.Linear(width, embed_dim) x 4 under manual_seed(seed + 1)
    torch.manual_seed(seed + 1)
    built = [torch.nn.Linear(lin.in_features, lin.out_features) for lin in head.linear]
    for lin, new in zip(head.linear, built, strict=True):
        lin.load_state_dict(new.state_dict())
    head.eval()
    normal, anomalous = sentences("april_gan", meta["class_name"])
    protos = text_prototypes(encoder, normal, anomalous, True)
    geo = Geometry(size, size)
    pixels = normalise_images(
        [geo.image(im, method.params.score_resize) for im in ref["images"]],
        encoder.preprocessing,
    )
    with torch.no_grad():
        image_logits, taps = head(pixels, protos.expand(len(pixels), -1, -1))
        scores = image_logits.softmax(1)[:, 1].numpy()
        maps = method._map(head, taps, (size, size))  # noqa: SLF001
    head.train()
    masks = torch.from_numpy(ref["masks"]).float()
    classes = torch.zeros(len(pixels), dtype=torch.long)
    loss = method._loss(head, protos[None], (pixels, masks, classes))["loss"]  # noqa: SLF001
    opt = torch.optim.Adam(
        [p for p in head.parameters() if p.requires_grad], lr=1e-3, betas=(0.5, 0.999)
    )
    opt.zero_grad()
    loss.backward()
    opt.step()
    weight = np.stack([lin.weight.detach().numpy() for lin in head.linear])
    bias = np.stack([lin.bias.detach().numpy() for lin in head.linear])
    return scores, maps, float(loss.detach()), weight, bias


def test_fixture_is_small_and_described(reference):
    meta, ref = reference
    assert FIXTURE.with_suffix(".npz").stat().st_size <= 300_000
    assert meta["reference"].endswith("VAND-APRIL-GAN")
    assert ref["maps"].shape == (len(ref["images"]), meta["input_size"], meta["input_size"])
    # both normal and anomalous targets are present, so the loss sees both classes
    assert ref["masks"].reshape(len(ref["masks"]), -1).max(1).tolist() == [0, 1, 0, 1]


def test_scores_equal_reference(reference, ours):
    _, ref = reference
    assert np.abs(ours[0] - ref["scores"]).max() <= TOL


def test_maps_equal_reference(reference, ours):
    _, ref = reference
    assert np.abs(ours[1] - ref["maps"]).max() <= TOL


def test_training_loss_and_adam_step_equal_reference(reference, ours):
    _, ref = reference
    assert abs(ours[2] - float(ref["loss"])) <= TOL * abs(float(ref["loss"]))
    assert np.abs(ours[3] - ref["stepped_weight"]).max() <= 1e-6
    assert np.abs(ours[4] - ref["stepped_bias"]).max() <= 1e-6


def test_focal_smoothing_by_hand():
    """VAND's FocalLoss(smooth=s): p_t' = (1 - 2s) p_t + 2s, loss = -(1 - p_t')^2 log p_t'."""
    s = 1e-5
    # pixel 0: anomalous target, p_anomalous = 0 (saturated wrong); pixel 1: normal, p_normal = 1
    prob = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2): p_normal, p_anomalous
    target = torch.tensor([[[1.0, 0.0]]])
    wrong = -((1 - 2 * s) ** 2) * math.log(2 * s)  # p_t' = 2s
    right = 0.0  # p_t' = 1 - 2s + 2s = 1
    expected = (wrong + right) / 2
    assert float(focal_loss(prob, target, smooth=s)) == pytest.approx(expected, rel=1e-6)
    # without smoothing the floor is 1e-8: -(1 - 1e-8)^2 log 1e-8 for the wrong pixel
    plain = -((1 - 1e-8) ** 2) * math.log(1e-8) / 2
    assert float(focal_loss(prob, target)) == pytest.approx(plain, rel=1e-5)


def _constant(value: int, size: int) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_mosaic_of_originals_tiles_full_size_images_and_resizes_once():
    """VAND's combine_img: the originals tiled at full size, then one geometry resize."""
    from PIL import Image

    from iadbench.clip.train_data import mosaic_of_originals

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(4)]
    masks = [np.zeros((16, 16), bool) for _ in range(4)]
    masks[3][8:, 8:] = True
    # geometry at the mosaic's own size: no resize at all, the exact 2x2 tile
    tile = np.zeros((32, 32, 3), np.uint8)
    tile[:16, :16], tile[:16, 16:], tile[16:, :16], tile[16:, 16:] = images
    image, mask = mosaic_of_originals(images, masks, Geometry(32, 32), "bicubic", "bilinear")
    assert np.array_equal(image, tile)
    assert mask.sum() == 64 and mask[24:, 24:].all() and not mask[:24].any()
    # a smaller geometry: the 32 px tile resized once to 16 px (PIL bicubic), not tile-of-crops
    image, _ = mosaic_of_originals(images, masks, Geometry(16, 16), "bicubic", "bilinear")
    once = np.asarray(Image.fromarray(tile).resize((16, 16), Image.BICUBIC))
    assert np.array_equal(image, once)


def test_image_set_reads_originals_for_a_mosaic():
    from iadbench.clip.train_data import ImageSet

    encoder_pp = load_clip("clip_tiny", "random").preprocessing
    crops = [_constant(0, 8) for _ in range(2)]
    masks = [np.zeros((8, 8), bool) for _ in range(2)]
    read = []

    def originals(i: int):
        read.append(i)
        return _constant(200, 16), np.ones((16, 16), bool)

    data = ImageSet(
        crops, masks, [0, 0], encoder_pp, 1.0, "bicubic",
        originals=originals, geometry=Geometry(8, 8), mask_resample="bilinear",
    )  # fmt: skip
    pixels, mask, c = data[0]
    assert len(read) == 4 and c == 0
    assert pixels.shape == (3, 8, 8) and bool(mask.all())
    # every pixel is the originals' 200, normalised: not the crops' 0
    expected = (200 / 255 - encoder_pp.mean[0]) / encoder_pp.std[0]
    assert float(pixels[0].min()) == pytest.approx(expected, abs=1e-5)
