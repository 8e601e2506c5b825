"""Crane's Bayes path (``kind: crane``, ``bayes``): ours beside Bayes-PFL's sampling code.

What can be compared: our Bayes path is Bayes-PFL's Monte Carlo idea without its trained flows
(METHODS §12.2): Gaussian noise on the prompt token embeddings, where Bayes-PFL samples a latent
``z ~ N(mu(g), var(g))`` (then planar flows, amortised from the image) and adds it to learned
context vectors. Their flows and prompt learner need training, so the compared part is the
sampling itself, their ``models/PFL.py`` ``PFL.reparameterize`` (``z = eps * sqrt(var) + mu``,
``eps = torch.randn_like`` from the global RNG), with ``mu`` = the prompts' token embeddings and
``var = sigma^2``, called once per sample and state (``sample_num`` = 1) in our draw order
(normal then anomalous, sample after sample) after ``torch.manual_seed(seed)``: the CPU global
generator then gives the same ``eps`` as our seeded ``torch.Generator``, so the seeds align.
Both noisy embedding sets go through our text tower (the text tower itself is compared in the
Crane rows, against Crane's) into (R, 2, D) prototypes; the row compares our
``iadbench.methods.crane.bayes.noisy_prototypes`` with prototypes from their samples (the row's
"scores" are the prototype values; no map). Their inference aggregation (the mean over the
B x R pairs of the two-class softmax, inline in their ``test.py``) is the same formula as our
``sample_outputs`` mean and is not callable on its own, so it is not run here.

Stubbed imports: none; ``models.PFL`` imports only torch and their ``models.flows``.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import torch

from .common import import_checkout, import_from, print_row, row

REFERENCE = "Bayes-PFL (xiaozhen228/Bayes-PFL)"
BACKBONE = "clip_tiny"  # only the text tower runs; the tiny one keeps 420 sentences x R fast


def add_arguments(ap) -> None:
    g = ap.add_argument_group("bayes_pfl")
    g.add_argument("--bayes-pfl-repo", type=Path, help="checkout of xiaozhen228/Bayes-PFL")
    g.add_argument("--bayes-pfl-commit", help="its commit when it is not a git work tree")
    g.add_argument("--bayes-samples", type=int, default=8)
    g.add_argument("--bayes-sigmas", nargs="+", type=float, default=[0.001, 0.1])
    g.add_argument("--bayes-seed", type=int, default=0)
    g.add_argument("--bayes-prompts", default="april_gan", help="april_gan, winclip or pair")
    g.add_argument(
        "--bayes-write-fixture",
        action="store_true",
        help="write tests/fixtures/reference/crane_bayes.{npz,json}",
    )


def their_prototypes(pfl, encoder, normal, anomalous, samples: int, sigma: float, seed: int):
    """(R, 2, D) prototypes from noisy embeddings drawn by their ``reparameterize``."""
    from iadbench.clip.encoder import prototypes

    clean = [encoder.embed_text(normal), encoder.embed_text(anomalous)]
    torch.manual_seed(seed)
    out = []
    with torch.no_grad():
        for _ in range(samples):
            encoded = []
            for tokens, emb in clean:
                var = torch.full_like(emb, sigma**2)
                z = pfl.reparameterize(emb, var, mode="test")[0]  # sample_num 1: (1, ...)
                encoded.append(encoder.encode_text_embeddings(tokens, z))
            out.append(prototypes(*encoded, normalize_each=True))
    return torch.stack(out)


def run(args, data) -> list[dict]:
    from iadbench.clip.encoder import load_clip
    from iadbench.clip.prompts import sentences
    from iadbench.methods.crane.bayes import noisy_prototypes

    from .common import save_fixture
    from .crane import prompt_set, repo_commit

    encoder = load_clip(BACKBONE, "random", seed=args.weights_seed)
    rows, kept = [], {}
    with import_checkout(args.bayes_pfl_repo, "--bayes-pfl-repo", "models/PFL.py") as repo:
        commit = args.bayes_pfl_commit or repo_commit(repo)
        pfl_mod = import_from(repo, "models.PFL")
        width = encoder.model.token_embedding.weight.shape[1]
        pfl = pfl_mod.PFL(None, None, types.SimpleNamespace(embed_dim=width, sample_num=1))
        print(f"bayes-pfl: {repo} ({commit}); PFL.reparameterize with sample_num 1")
        for cat in data:
            normal, anomalous = sentences(prompt_set(args.bayes_prompts), cat.replace("_", " "))
            for sigma in args.bayes_sigmas:
                start = time.perf_counter()
                theirs = their_prototypes(
                    pfl, encoder, normal, anomalous, args.bayes_samples, sigma, args.bayes_seed
                )
                r_t = (time.perf_counter() - start) / args.bayes_samples
                start = time.perf_counter()
                ours = noisy_prototypes(
                    encoder, normal, anomalous, args.bayes_samples, sigma, args.bayes_seed
                )
                o_t = (time.perf_counter() - start) / args.bayes_samples
                spread = float((ours - ours.mean(0)).abs().max())
                r = row(
                    category=cat,
                    method="crane bayes",
                    reference=f"{REFERENCE} @{commit[:7]}",
                    setting=f"noisy prototypes, R {args.bayes_samples}, sigma {sigma:g} "
                    f"(spread over R {spread:.2g}; s/img = s/sample)",
                    ours=(ours.numpy().ravel(), None, o_t),
                    theirs=(theirs.numpy().ravel(), None, r_t),
                    switches=f"bayes.samples {args.bayes_samples}, bayes.sigma {sigma:g}, "
                    f"bayes.seed {args.bayes_seed}, prompts {args.bayes_prompts} "
                    f"({len(normal)}+{len(anomalous)}), {BACKBONE} text tower",
                )
                print_row(r)
                rows.append(r)
                kept[f"{cat}/sigma {sigma:g}"] = theirs.numpy()
    if args.bayes_write_fixture:
        save_fixture(
            "crane_bayes",
            kept,
            {
                "reference": "https://github.com/xiaozhen228/Bayes-PFL",
                "reference_commit": commit,
                "their_function": "models/PFL.py PFL.reparameterize (sample_num 1), one call per "
                "sample and state after torch.manual_seed(seed)",
                "backbone": BACKBONE,
                "weights": "random",
                "weights_seed": args.weights_seed,
                "prompts": prompt_set(args.bayes_prompts),
                "class_names": {cat: cat.replace("_", " ") for cat in data},
                "samples": args.bayes_samples,
                "sigmas": list(args.bayes_sigmas),
                "seed": args.bayes_seed,
                "command": "benchmarks/compare_reference.py " + " ".join(sys.argv[1:]),
            },
        )
    return rows
