"""M3DM: our ``m3dm`` kind beside the authors' decision-layer fusion (nomewang/M3DM, a checkout
given with ``--m3dm-repo``), at equal weights, on weld-like runs.

What runs on their side is their own code, imported from the checkout:
``feature_extractors.multiple_features.DoubleRGBPointFeatures`` (two banks, xyz + rgb) built by
its own ``__init__`` and driven through ``add_sample_to_mem_bank``, ``run_coreset``,
``add_sample_to_late_fusion_mem_bank``, ``run_late_fusion`` and ``predict``: point feature
alignment (3×3 average, adaptive pool to 56), the banks' standardisation (its xyz-mean /
rgb-std quirk), the coreset (setting ``own-coreset``), PatchCore's reweighted score per bank,
the weights 1.0 / 0.1 and the ``SGDOneClassSVM`` fitted on the TRAIN runs' score vectors; and
``models.models.PointTransformer`` (Point-MAE) with our random weights loaded by
``load_state_dict(strict=True)`` (so a Point-MAE checkpoint's names are ours), followed by their
``models.pointnet2_utils.interpolating_points``.

What cannot run on a CPU is replaced and said so: their FPS and kNN are CUDA kernels
(``pointnet2_ops``, ``knn_cuda``), so both sides group the points with *our* FPS and kNN (their
``group_divider`` is swapped for ours; our FPS is checked by hand in tests/test_m3dm.py); those
two packages and ``tifffile`` are stub modules that are never called. Their feature extractor's
DINO ViT (``timm`` ``vit_base_patch8_224_dino``, pretrained, downloaded) is not built: both
sides get the same rgb patch tokens. The pseudo point cloud (sensor CSV -> tiled depth map) is
ours on both sides (the reference has no sensor path); it is checked by hand in the tests.
Their zero-point filter sees an all-nonzero organised cloud (the pseudo cloud has no
background).

Settings (``--m3dm-settings``): ``shared-coreset`` gives their extractor our coreset banks after
its own ``run_coreset`` (at ``f_coreset`` 1: standardisation only), so everything after the
coreset is compared on equal banks; ``own-coreset`` lets each side pick its coreset
(``--m3dm-coreset`` 0.1): ours is PatchCore's approximate greedy sampler (``coreset.py``),
theirs sklearn ``SparseRandomProjection(eps=0.9)`` + greedy from index 0 in fp16, a named
difference (the bank sizes agree: ours ``rgb_coreset: xyz_bank`` reproduces their size quirk);
``full`` keeps every patch, where each TRAIN run's patches are all in the bank, so its in-sample
vectors are distance rounding noise on both sides and the SVM is fitted on noise. Besides the
scores, each row reports the relative differences of the TRAIN and TEST per-bank vectors, of
the SVM coefficients, and of our SVM fitted on *their* TRAIN vectors against theirs.
"""

from __future__ import annotations

import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .common import import_checkout, import_from, print_row, row, save_fixture

REFERENCE = "nomewang/M3DM DoubleRGBPointFeatures"
# It ignores the shared images: weld runs need a sensor CSV and photos, so it makes its own.
DATA = "its own generated weld-like runs (sensor CSV + photos), not the images above"
SIZE = 64  # pseudo depth map side (their img_size); their resize to 56 is fixed
GROUPS, GROUP_SIZE = 64, 32
RGB_GRID, RGB_DIM = 28, 32  # their code reshapes the rgb patches as 784 = 28 x 28


def add_arguments(ap) -> None:
    g = ap.add_argument_group("m3dm")
    g.add_argument("--m3dm-repo", type=Path, help="checkout of github.com/nomewang/M3DM")
    g.add_argument("--m3dm-train", type=int, default=6, help="normal TRAIN runs")
    g.add_argument("--m3dm-test", type=int, default=6, help="scored runs (half anomalous)")
    g.add_argument("--m3dm-coreset", type=float, default=0.1)
    g.add_argument(
        "--m3dm-settings",
        nargs="+",
        default=["shared-coreset", "own-coreset"],
        choices=["shared-coreset", "own-coreset", "full"],
        help="shared-coreset: our coreset banks given to theirs (isolates scoring + fusion); "
        "own-coreset: each side's own coreset; full: no coreset (TRAIN vectors in-sample noise)",
    )


# --------------------------------------------------------------------------- data


def sensor_rows(rng, anomalous: bool, n: int = 40) -> list[list]:
    t = np.arange(n) * 0.116
    current = 150 + np.cumsum(rng.normal(0, 1.0, n))
    voltage = 21 + rng.normal(0, 0.2, n)
    if anomalous:
        current[n // 3 : n // 3 + 5] += 60
    rows = []
    for i in range(n):
        signals = [4.5, 15 + rng.normal(0, 0.1), 8.0, current[i], 0.5 * i, voltage[i]]
        rows.append(["2023-01-04", f"10:00:{t[i]:06.3f}", 1, *signals, ""])
    return rows


def make_split(tmp: Path, split: str, labels: list[int], seed: int):
    """Runs with one photo view of random rgb tokens (an odd patch when anomalous) and a CSV."""
    from iadbench.data.weld_demo import SENSOR_HEADER
    from iadbench.features.embeddings import INDEX_COLUMNS, EmbeddingSet

    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(7).normal(size=(6, RGB_DIM))
    records, tokens, paths, n = [], [], [], RGB_GRID * RGB_GRID
    for i, label in enumerate(labels):
        sid = f"{split}{i:03d}"
        view = prototypes[rng.integers(0, 6, n)] + 0.1 * rng.normal(size=(n, RGB_DIM))
        if label:
            view[rng.integers(0, n)] += 2.5
        records.append([sid, label, "x", split, 0, i * n, n, RGB_GRID, RGB_GRID])
        tokens.append(view)
        path = tmp / f"{sid}.csv"
        lines = [",".join(map(str, r)) for r in sensor_rows(rng, bool(label))]
        path.write_text(SENSOR_HEADER + "\n" + "\n".join(lines) + "\n")
        paths.append(str(path))
    store = EmbeddingSet(
        np.concatenate(tokens).astype(np.float16),
        pd.DataFrame(records, columns=INDEX_COLUMNS),
        {"encoder": "rgb", "modality": "photo", "dim": RGB_DIM, "config_hash": "parity"},
    )
    index = pd.DataFrame(
        {"sample_id": [r[0] for r in records], "label": labels, "split": split,
         "sensor_path": paths}
    )  # fmt: skip
    return index, store


# --------------------------------------------------------------------------- their side


class StubKnn:
    """knn_cuda.KNN's constructor (their ``Group`` builds one); calling it is an error."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs):
        raise RuntimeError("knn_cuda stub called: grouping must be OurGroups")


def stub_cuda_imports() -> None:
    """``pointnet2_ops``, ``knn_cuda`` (CUDA kernels) and ``tifffile`` as empty modules: their
    feature modules import them at the top; nothing here calls them."""
    ops = types.ModuleType("pointnet2_ops")
    ops.pointnet2_utils = types.ModuleType("pointnet2_ops.pointnet2_utils")
    knn = types.ModuleType("knn_cuda")
    knn.KNN = StubKnn
    for name, module in {
        "pointnet2_ops": ops,
        "pointnet2_ops.pointnet2_utils": ops.pointnet2_utils,
        "knn_cuda": knn,
        "tifffile": types.ModuleType("tifffile"),
    }.items():
        sys.modules.setdefault(name, module)


class OurGroups(torch.nn.Module):
    """Their ``Group`` interface (neighbourhood, centre, kNN idx, centre idx) from our FPS/kNN."""

    def __init__(self, num_group: int, group_size: int) -> None:
        super().__init__()
        self.num_group, self.group_size = num_group, group_size

    def forward(self, xyz):  # (1, N, 3)
        from iadbench.methods.m3dm.pointmae import farthest_point_sample, knn_groups

        centre_idx = farthest_point_sample(xyz[0], self.num_group)
        centres = xyz[0][centre_idx]
        idx, groups = knn_groups(xyz[0], centres, self.group_size)
        return groups[None], centres[None], idx[None], centre_idx[None]


def their_model(repo: Path, f_coreset: float, our_state: dict):
    """Their DoubleRGBPointFeatures (network replaced) and PointTransformer with our weights."""
    stub_cuda_imports()
    with import_checkout(repo, "--m3dm-repo", "feature_extractors/multiple_features.py"):
        features = import_from(repo, "feature_extractors.features")
        multiple = import_from(repo, "feature_extractors.multiple_features")
        models = import_from(repo, "models.models")
        pn2 = import_from(repo, "models.pointnet2_utils")
    features.Model = lambda **_: torch.nn.Identity()  # their ViT-B/8 + Point-MAE, not built here
    args = types.SimpleNamespace(
        rgb_backbone_name="vit_base_patch8_224_dino", xyz_backbone_name="Point_MAE",
        group_size=GROUP_SIZE, num_group=GROUPS, img_size=SIZE, f_coreset=f_coreset,
        coreset_eps=0.9, random_state=None, use_uff=False, ocsvm_nu=0.5, ocsvm_maxiter=1000,
        xyz_s_lambda=1.0, rgb_s_lambda=0.1, xyz_smap_lambda=1.0, rgb_smap_lambda=0.1,
        save_feature_path="",
    )  # fmt: skip

    class Fed(multiple.DoubleRGBPointFeatures):
        """Their class with its network output handed in (``self.fed``)."""

        def __call__(self, rgb, xyz):
            return self.fed

    extractor = Fed(args)
    net = models.PointTransformer(group_size=GROUP_SIZE, num_group=GROUPS)
    net.load_state_dict(our_state, strict=True)
    net.group_divider = OurGroups(GROUPS, GROUP_SIZE)
    return extractor, net.eval(), pn2.interpolating_points


def their_sample(net, interpolate, cloud: np.ndarray, rgb: np.ndarray):
    """The ``(sample, network output)`` their methods read for one run."""
    xyz = torch.from_numpy(cloud).T[None].contiguous()  # (1, 3, N)
    with torch.no_grad():
        feats, centre, idx, centre_idx = net(xyz)
        dense = interpolate(xyz, centre.permute(0, 2, 1), feats)
    rgb_map = torch.from_numpy(rgb).T.reshape(1, RGB_DIM, RGB_GRID, RGB_GRID).float()
    organised = torch.ones(1, 3, SIZE, SIZE)  # all points nonzero: no background to drop
    fed = ([rgb_map], [feats], centre, idx, centre_idx, dense)
    return (torch.zeros(1, 3, 8, 8), organised), fed


def run_theirs(extractor, net, interpolate, train, test, labels, banks=None):
    """Their fit and predict; ``banks``: standardised (xyz, rgb) banks put in place of theirs
    after ``run_coreset`` (ours, to isolate everything after the coreset). Returns their test
    scores, TRAIN and TEST score vectors, the SVM's coefficients and seconds per test run."""
    for cloud, rgb in train:
        sample, extractor.fed = their_sample(net, interpolate, cloud, rgb)
        extractor.add_sample_to_mem_bank(sample)
    extractor.run_coreset()
    if banks is not None:
        extractor.patch_xyz_lib, extractor.patch_rgb_lib = (torch.from_numpy(b) for b in banks)
    for cloud, rgb in train:
        sample, extractor.fed = their_sample(net, interpolate, cloud, rgb)
        extractor.add_sample_to_late_fusion_mem_bank(sample)
    extractor.run_late_fusion()
    start = time.perf_counter()
    for (cloud, rgb), label in zip(test, labels, strict=True):
        sample, extractor.fed = their_sample(net, interpolate, cloud, rgb)
        extractor.predict(sample, torch.zeros(1, 224, 224), label)
    seconds = (time.perf_counter() - start) / len(test)
    train_vectors = extractor.s_lib.double().numpy()  # run_late_fusion concatenated it
    extractor.s_lib, extractor.s_map_lib = [], []
    for cloud, rgb in test:  # their per-bank vectors of the TEST runs, as for TRAIN
        sample, extractor.fed = their_sample(net, interpolate, cloud, rgb)
        extractor.add_sample_to_late_fusion_mem_bank(sample)
    test_vectors = torch.cat(extractor.s_lib).double().numpy()
    scores = np.concatenate(extractor.image_preds).astype(np.float64)
    return scores, train_vectors, test_vectors, extractor.detect_fuser.coef_, seconds


def rel(a, b) -> float:
    """max |a − b| / max |b|."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# --------------------------------------------------------------------------- our side


def our_cfg(coreset: float, seed: int, **switches) -> dict:
    """Our m3dm entry at the harness's sizes (the reference's choices are the defaults)."""
    return {
        "kind": "m3dm", "size": SIZE, "num_group": GROUPS, "group_size": GROUP_SIZE,
        "coreset": coreset, "knn_backend": "torch", "seed": seed, **switches,
    }  # fmt: skip


def make_runs(tmp: Path, n_train: int, labels: list[int], seed: int):
    """(TRAIN index, store), (scored index, store): the generated weld-like runs."""
    return make_split(tmp, "train", [0] * n_train, seed), make_split(tmp, "test", labels, seed + 1)


def run_ours(cfg: dict, train, test, state_dir: Path):
    """Our fit and score: (state, scores, TEST per-bank vectors (N, 2), seconds per run)."""
    from iadbench.methods.base import MethodInputs
    from iadbench.methods.m3dm.method import M3dm

    method = M3dm(cfg, "cpu")
    fit_in = MethodInputs(train[0], cached={"embeddings": {"train": {"photo": train[1]}}})
    state = method.fit(fit_in, state_dir)
    score = method.scorer(state_dir)
    start = time.perf_counter()
    ours, _, parts = score(MethodInputs(test[0], cached={"embeddings": {"photo": test[1]}}), (1, 1))
    seconds = (time.perf_counter() - start) / len(test[0])
    return (
        method,
        state,
        ours,
        np.stack([parts["component_xyz"], parts["component_rgb"]], 1),
        seconds,
    )


def compare(repo: Path, setting: str, coreset: float, seed: int, train, test, labels, tmp: Path):
    """Ours and theirs on one setting: a dict of both sides' scores, vectors, SVMs and banks."""
    from iadbench.methods.m3dm.pointcloud import run_cloud

    ours_f = 1.0 if setting == "full" else coreset
    state_dir = tmp / f"state_{setting}"
    method, state, ours, our_test, our_seconds = run_ours(
        our_cfg(ours_f, seed), train, test, state_dir
    )
    stats = state["sensor_minmax"]
    runs = {
        name: [(run_cloud(p, stats, SIZE), store.sequence(i))
               for i, p in enumerate(index["sensor_path"])]
        for name, (index, store) in (("train", train), ("test", test))
    }  # fmt: skip
    our_state = method.point_net(torch.device("cpu")).state_dict()
    shared = setting == "shared-coreset"
    extractor, net, interpolate = their_model(repo, 1.0 if shared else ours_f, our_state)
    banks = None
    if shared:
        banks = tuple(np.load(state_dir / f"{b}_bank.npy") for b in ("xyz", "rgb"))
    theirs, their_train, their_test, their_coef, their_seconds = run_theirs(
        extractor, net, interpolate, runs["train"], runs["test"], labels, banks
    )
    return {
        "ours_f": ours_f, "state": state, "ours": ours, "our_test": our_test,
        "our_seconds": our_seconds, "theirs": theirs, "their_train": their_train,
        "their_test": their_test, "their_coef": their_coef.ravel(),
        "their_seconds": their_seconds,
        "their_banks": (len(extractor.patch_xyz_lib), len(extractor.patch_rgb_lib)),
    }  # fmt: skip


def run(args, data) -> list[dict]:
    from iadbench.methods.m3dm.dlf import fit_fuser

    n_bad = args.m3dm_test // 2
    labels = [0] * (args.m3dm_test - n_bad) + [1] * n_bad
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, test = make_runs(tmp, args.m3dm_train, labels, args.weights_seed)
        for setting in args.m3dm_settings:
            c = compare(
                args.m3dm_repo, setting, args.m3dm_coreset, args.weights_seed, train, test,
                labels, tmp,
            )  # fmt: skip
            state = c["state"]
            same_input_coef = fit_fuser(c["their_train"], 0.5, 1000, 42)["coef"]
            d_coef = float(np.abs(np.asarray(same_input_coef) - c["their_coef"]).max())
            detail = (
                f"relative max|d|: TRAIN vectors "
                f"{rel(state['train_vectors'], c['their_train']):.2g}, "
                f"TEST vectors {rel(c['our_test'], c['their_test']):.2g}, SVM coef "
                f"{rel(state['svm']['coef'], c['their_coef']):.2g}, scores "
                f"{rel(c['ours'], c['theirs']):.2g}; our SVM fitted on their TRAIN vectors: "
                f"max|d coef| {d_coef:.2g}; banks ours "
                f"xyz {state['xyz_bank_size']} rgb {state['rgb_bank_size']}, theirs xyz "
                f"{c['their_banks'][0]} rgb {c['their_banks'][1]}"
            )
            r = row(
                category="weld-like",
                method="m3dm",
                reference=REFERENCE,
                setting=f"{setting} {c['ours_f']:g}, {len(labels)} runs",
                ours=(c["ours"], None, c["our_seconds"]),
                theirs=(c["theirs"], None, c["their_seconds"]),
                switches=(
                    "standardise reference, rgb_coreset xyz_bank, score_divisor 1000, lambda "
                    f"1.0/0.1, nu 0.5, svm_seed 42; FPS/kNN ours on both sides; {detail}"
                ),
            )
            print_row(r)
            print("  " + detail)
            rows.append(r)
    if args.write_fixture:
        write_fixture(args.m3dm_repo, args.m3dm_coreset, args.weights_seed)
    return rows


# --------------------------------------------------------------------------- CI fixture

# shared-coreset (our banks given to theirs): everything after the coreset compared on equal banks
FIXTURE = {"n_train": 4, "labels": [0, 0, 1, 1], "setting": "shared-coreset"}


def write_fixture(repo: Path, coreset: float, seed: int) -> None:
    """``tests/fixtures/reference/m3dm.{npz,json}``: their per-bank TRAIN and TEST vectors, SVM
    coefficients and scores on runs that ``make_runs(..., seed)`` regenerates."""
    import subprocess

    f = FIXTURE
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, test = make_runs(tmp, f["n_train"], f["labels"], seed)
        c = compare(repo, f["setting"], coreset, seed, train, test, f["labels"], tmp)
    print(
        f"fixture m3dm: relative max|d| TEST vectors {rel(c['our_test'], c['their_test']):.2g}, "
        f"scores {rel(c['ours'], c['theirs']):.2g}"
    )
    arrays = {
        "train_vectors": c["their_train"],
        "test_vectors": c["their_test"],
        "coef": c["their_coef"],
        "scores": c["theirs"],
    }
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    meta = {
        "reference": f"{REFERENCE} (nomewang/M3DM @ "
        f"{head or 'unknown commit: the checkout has no .git'})",
        "arch": f"Point-MAE PointTransformer (384 wide, 12 blocks) with our random weights, "
        f"{GROUPS} groups of {GROUP_SIZE}, pseudo clouds {SIZE}x{SIZE}",
        "weights": f"random: our m3dm point net seeded with {seed}, loaded into theirs strictly",
        "seed": seed,
        "runs": f"make_runs(tmp, {f['n_train']}, {f['labels']}, {seed}) in "
        "benchmarks/reference/m3dm.py (TRAIN and scored weld-like runs, generated)",
        "setting": f["setting"],
        "config": our_cfg(coreset, seed),
        "command": ".venv-compare/bin/python benchmarks/compare_reference.py --methods m3dm "
        "--m3dm-repo PATH --m3dm-settings shared-coreset --write-fixture",
    }
    save_fixture("m3dm", arrays, meta)
