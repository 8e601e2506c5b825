"""Late fusion: our ``late_fusion`` kind beside the public reimplementation of the Intel
late-fusion baseline (bluuueheart/Weld-Anomaly-Detection, ``baselines/Late_Fusion``, a checkout
given with ``--weld-repo``), at equal weights, on generated per-frame features.

What runs on their side is their own code, imported from the checkout:
``baselines.Late_Fusion.models.AudioAutoEncoder`` and ``VideoAutoEncoder`` (their
``get_reconstruction_error``: per-frame MSE) with our random weights loaded (audio by
``load_state_dict(strict=True)``: the layer names agree; video Linear by Linear, in order), and
``baselines.Late_Fusion.utils``: ``aggregate_audio_scores_expected_value``,
``aggregate_video_scores_max_over_2s_ma``, ``compute_standardization_stats`` and
``standardize_scores`` (TRAIN runs' mean and std, ``+ 1e-8``), the fused ``w·a + (1 − w)·v``
at their ``w`` 0.37, and ``optimize_fusion_weights`` (grid 0.01) beside our ``best_weight``.
Our side is the kind's own code: its autoencoders built from its parameters and seed,
``LateFusion._audio_scores`` / ``_video_scores`` / ``_window`` and ``z_stats`` / ``z_score``.

Both sides get the SAME per-frame features: audio "spectrogram" frames and video feature
frames drawn here (so neither STFT nor SlowFast runs). The feature extraction itself differs and
is not compared: their video features come from single frames (``slowfast(frame)`` per frame),
the paper's (and our video encoders') from a window around each frame.

Settings: ``reference arch`` sets our switches ``audio_padding: same`` and
``audio_leaky_slope: 0.2`` (their Conv1d/ConvTranspose1d ``padding=1`` and ``LeakyReLU(0.2)``);
``iadbench defaults`` keeps ours (unpadded, slope 0.01) with the same weights (the padding
changes no parameter shape), so its row shows what those two choices move. Rows per component:
audio and video z-scores, the fused score, and ``train step``: the audio and video MSE before
and after one Adam step (lr 1e-4, no schedule: their one-cycle and our warm-up + cosine are
not compared) in train mode (batch-statistics BatchNorm; dropout masks from the same seed).
"""

from __future__ import annotations

import time
import types
from pathlib import Path

import numpy as np
import torch

from .common import import_checkout, import_from, print_row, row, save_fixture

REFERENCE = "bluuueheart/Weld-Anomaly-Detection baselines/Late_Fusion @57b310f"
DATA = "its own generated per-frame audio and video features, not the images above"
PROBE = "baselines/Late_Fusion/models.py"
BINS, HIDDEN, CONV_LAYERS, BOTTLENECK = 16, 8, 3, 4  # their AudioAutoEncoder arguments
VIDEO_DIM, VIDEO_WIDTHS = 16, [12, 10, 8, 6, 6]
RATE_HZ, WINDOW_S, W = 10.0, 2.0, 0.37  # their fps argument, 2-s window, their FUSION w
N_TRAIN, N_TEST, LR = 6, 6, 1e-4
SETTINGS = {
    "reference arch": {"audio_padding": "same", "audio_leaky_slope": 0.2},
    "iadbench defaults": {},
}


def add_arguments(ap) -> None:
    g = ap.add_argument_group("late_fusion")
    g.add_argument(
        "--weld-repo",
        type=Path,
        help="checkout of bluuueheart/Weld-Anomaly-Detection (57b310f); needs baselines/",
    )


def our_config(setting: str, seed: int) -> dict:
    """The ``late_fusion`` entry whose autoencoders have their architecture at tiny widths."""
    return {
        "kind": "late_fusion",
        "audio_widths": [HIDDEN] * (CONV_LAYERS + 1),
        "audio_bottleneck": BOTTLENECK,
        "video_widths": list(VIDEO_WIDTHS),
        "window_s": WINDOW_S,
        "w": W,
        "seed": seed,
        **SETTINGS[setting],
    }


def make_runs(seed: int) -> dict[str, list[np.ndarray]]:
    """TRAIN and TEST runs of float32 frames; anomalous TEST runs carry a burst in one modality.

    Video runs of 12-35 frames: some are shorter than the 20-frame window (both sides then take
    the mean of the whole run). Audio runs of 12-20 frames (enough for the unpadded default)."""
    rng = np.random.default_rng(seed)
    basis = {"audio": rng.normal(size=(3, BINS)), "video": rng.normal(size=(3, VIDEO_DIM))}
    out: dict[str, list[np.ndarray]] = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        for role, lengths in (("audio", (12, 21)), ("video", (12, 36))):
            runs = []
            for i in range(n):
                t = int(rng.integers(*lengths))
                noise = 0.1 * rng.normal(size=(t, basis[role].shape[1]))
                x = np.abs(rng.normal(size=(t, 3)) @ basis[role] + noise)
                if split == "test" and i >= n // 2 and (i % 2 == 0) == (role == "audio"):
                    x[2:8] += 2.0 * np.abs(rng.normal(size=(6, x.shape[1])))
                runs.append(x.astype(np.float32))
            out[f"{split}_{role}"] = runs
    out["test_labels"] = [np.array([0] * (N_TEST // 2) + [1] * (N_TEST - N_TEST // 2))]
    return out


def build_ours(setting: str, seed: int):
    """Our method and its two autoencoders at ``seed``, with BatchNorm running statistics and the
    PReLU slope drawn from ``seed`` too (fresh ones would make BatchNorm the identity)."""
    from iadbench.methods.late_fusion.method import LateFusion

    method = LateFusion(our_config(setting, seed), device="cpu")
    nets = {"audio": method._audio_net(BINS), "video": method._video_net(VIDEO_DIM)}
    gen = torch.Generator().manual_seed(seed + 1)
    bn, prelu = nets["audio"].encoder[0], nets["audio"].decoder[-1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.rand(BINS, generator=gen))
        bn.running_var.copy_(0.5 + torch.rand(BINS, generator=gen))
        bn.weight.copy_(0.5 + torch.rand(BINS, generator=gen))
        bn.bias.copy_(0.1 * torch.randn(BINS, generator=gen))
        prelu.weight.fill_(0.1)
    for net in nets.values():
        net.eval()
    return method, nets


def score_ours(method, nets, runs) -> dict[str, np.ndarray]:
    """Raw and z-scored audio / video run scores and the fused score, by the kind's own code."""
    from iadbench.methods.late_fusion.method import z_score, z_stats

    window = method._window(types.SimpleNamespace(meta={"rate_hz": RATE_HZ}))
    device = torch.device("cpu")

    def raw(split):
        audio = [torch.from_numpy(r) for r in runs[f"{split}_audio"]]
        video = [torch.from_numpy(r) for r in runs[f"{split}_video"]]
        return {
            "audio": method._audio_scores(nets["audio"], audio, device),
            "video": method._video_scores(nets["video"], video, window, device),
        }

    train, test = raw("train"), raw("test")
    out = {f"raw_{r}": test[r] for r in ("audio", "video")}
    for r in ("audio", "video"):
        out[f"z_{r}"] = z_score(test[r], z_stats(train[r]))
    w = float(method.params.w)
    out["fused"] = w * out["z_audio"] + (1.0 - w) * out["z_video"]
    return out


def _their_nets(models, ours):
    audio = models.AudioAutoEncoder(BINS, BOTTLENECK, HIDDEN, CONV_LAYERS)
    audio.load_state_dict(ours["audio"].state_dict(), strict=True)
    video = models.VideoAutoEncoder(
        VIDEO_DIM, [VIDEO_DIM, *VIDEO_WIDTHS], [*VIDEO_WIDTHS[::-1], VIDEO_DIM]
    )
    theirs = [m for m in [*video.encoder, *video.decoder] if isinstance(m, torch.nn.Linear)]
    mine = [m for m in ours["video"].net if isinstance(m, torch.nn.Linear)]
    assert len(theirs) == len(mine)
    with torch.no_grad():
        for t, m in zip(theirs, mine, strict=True):
            t.weight.copy_(m.weight)
            t.bias.copy_(m.bias)
    return {"audio": audio.eval(), "video": video.eval()}


def score_theirs(models, utils, nets, runs) -> dict[str, np.ndarray]:
    def raw(split):
        with torch.no_grad():
            audio = [
                nets["audio"].get_reconstruction_error(torch.from_numpy(r.T)[None])[0].numpy()
                for r in runs[f"{split}_audio"]
            ]
            video = [
                nets["video"].get_reconstruction_error(torch.from_numpy(r)[None])[0].numpy()
                for r in runs[f"{split}_video"]
            ]
        return {
            "audio": np.array([utils.aggregate_audio_scores_expected_value(e) for e in audio]),
            "video": np.array(
                [utils.aggregate_video_scores_max_over_2s_ma(e, fps=RATE_HZ) for e in video]
            ),
        }

    train, test = raw("train"), raw("test")
    out = {f"raw_{r}": test[r] for r in ("audio", "video")}
    for r in ("audio", "video"):
        mean, std = utils.compute_standardization_stats(train[r])
        out[f"z_{r}"] = utils.standardize_scores(test[r], mean, std)
    out["fused"] = W * out["z_audio"] + (1 - W) * out["z_video"]
    return out


def train_step_losses(nets, runs, ours: bool, seed: int) -> np.ndarray:
    """Audio and video MSE on the TRAIN runs before and after one Adam step, train mode.

    Ours: the kind's loss (``frame_errors(...).mean()``) and optimiser (``build_optimizer``);
    theirs: ``nn.MSELoss`` and ``torch.optim.Adam``, as their ``train.py``. Audio runs are cropped
    to the shortest from frame 0 (our loop crops at random offsets; theirs pads in its loader)."""
    import copy

    from iadbench.methods.late_fusion.autoencoders import frame_errors
    from iadbench.training import TrainConfig
    from iadbench.training.optim import build_optimizer

    n = min(len(r) for r in runs["train_audio"])
    batches = {
        "audio": torch.stack([torch.from_numpy(r[:n].T) for r in runs["train_audio"]]),
        "video": torch.from_numpy(np.concatenate(runs["train_video"])),
    }
    out = []
    for role in ("audio", "video"):
        net = copy.deepcopy(nets[role]).train()
        x = batches[role] if ours or role == "audio" else batches[role][None]
        dim = 1 if role == "audio" else -1
        opt = (
            build_optimizer(net, TrainConfig(epochs=1, batch_size=1, lr=LR))
            if ours
            else torch.optim.Adam(net.parameters(), lr=LR)
        )
        for step in range(2):
            torch.manual_seed(seed)  # the same dropout masks on both sides and both passes
            recon = net(x)
            loss = frame_errors(x, recon, dim).mean() if ours else torch.nn.MSELoss()(recon, x)
            out.append(loss.item())
            if step == 0:
                opt.zero_grad()
                loss.backward()
                opt.step()
    return np.array(out)  # audio before, after, video before, after


def _timed(score, *args, repeats: int = 5):
    """The scores and the best of ``repeats`` timings, in seconds per run scored (TRAIN runs
    for the z statistics included): tiny networks, so the minimum filters a busy machine."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = score(*args)
        times.append((time.perf_counter() - t0) / (N_TRAIN + N_TEST))
    return out, min(times)


def run(args, data) -> list[dict]:
    from iadbench.methods.late_fusion.method import best_weight

    runs = make_runs(args.weights_seed)
    rows, fixture = [], {}
    with import_checkout(args.weld_repo, "--weld-repo", PROBE) as path:
        models = import_from(path, "baselines.Late_Fusion.models")
        utils = import_from(path, "baselines.Late_Fusion.utils")
        for setting in SETTINGS:
            method, ours = build_ours(setting, args.weights_seed)
            theirs = _their_nets(models, ours)
            mine, t_ours = _timed(score_ours, method, ours, runs)
            ref, t_ref = _timed(score_theirs, models, utils, theirs, runs)
            switches = ", ".join(f"{k}: {v}" for k, v in SETTINGS[setting].items()) or "defaults"
            for comp, key in (("audio", "z_audio"), ("video", "z_video"), ("fused", "fused")):
                rows.append(
                    row(
                        category=comp,
                        method="late_fusion",
                        reference=REFERENCE,
                        setting=setting,
                        ours=(mine[key], None, t_ours),
                        theirs=(ref[key], None, t_ref),
                        switches=switches,
                    )
                )
                print_row(rows[-1])
            steps = {
                side: train_step_losses(nets, runs, side == "ours", args.weights_seed)
                for side, nets in (("ours", ours), ("theirs", theirs))
            }
            rows.append(
                row(
                    category="train step",
                    method="late_fusion",
                    reference=REFERENCE,
                    setting=setting,
                    ours=(steps["ours"], None, float("nan")),
                    theirs=(steps["theirs"], None, float("nan")),
                    switches=switches,
                )
            )
            print_row(rows[-1])
            labels = runs["test_labels"][0]
            w_ours = best_weight(labels, mine["z_audio"], mine["z_video"])[0]
            w_ref = float(utils.optimize_fusion_weights(ref["z_audio"], ref["z_video"], labels)[0])
            print(f"late_fusion {setting}: grid-searched w ours {w_ours:.2f} theirs {w_ref:.2f}")
            fixture[setting] = {**{f"ref_{k}": v for k, v in ref.items()}, "steps": steps["theirs"]}
            fixture[setting]["w"] = np.array([w_ref])
    if args.write_fixture:
        write_fixture(runs, fixture["reference arch"], args.weights_seed)
    return rows


def write_fixture(runs, ref: dict, seed: int) -> None:
    """``tests/fixtures/reference/late_fusion.{npz,json}``: the generated runs and the
    reference's scores (setting ``reference arch``); the weights come back from the seed."""
    arrays = {f"{k}_{i}": r for k, v in runs.items() for i, r in enumerate(v)}
    arrays.update({k: np.asarray(v, np.float64) for k, v in ref.items()})
    meta = {
        "reference": REFERENCE,
        "reference_code": "baselines/Late_Fusion/models.py (AudioAutoEncoder, VideoAutoEncoder), "
        "utils.py (aggregation, standardisation, optimize_fusion_weights)",
        "regenerate": ".venv-compare/bin/python benchmarks/compare_reference.py --methods "
        "late_fusion --weld-repo PATH --write-fixture",
        "weights_seed": seed,
        "setting": "reference arch",
        "our_config": our_config("reference arch", seed),
        "their_arch": {
            "AudioAutoEncoder": [BINS, BOTTLENECK, HIDDEN, CONV_LAYERS],
            "VideoAutoEncoder": {"feature_dim": VIDEO_DIM, "widths": VIDEO_WIDTHS},
        },
        "rate_hz": RATE_HZ,
        "w": W,
        "n_runs": {"train": N_TRAIN, "test": N_TEST},
        "torch": torch.__version__,
    }
    save_fixture("late_fusion", arrays, meta)
