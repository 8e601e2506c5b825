"""Features of synthetic anomalies, cached in the feature store beside the real splits.

A gate that reads cached features (the feature gate) still needs an anomaly class. Its synthetic
anomalies are made from the category's normal ``train`` images once, by the feature stage, and
stored like any split; the gate's fit and scoring jobs then never run the backbone themselves.

Each normal train image (manifest order ``i``) gets ``copies`` anomalies; copy ``k`` is
:func:`iadbench.data.synthetic.synthesize` with the generator
``numpy.random.default_rng([seed, i, k])`` and the other normal images as NSA's sources and
Perlin's textures. It is made on the image after the dataset's square ``resize`` and before its
centre ``crop``, so the extraction path (resize, which is then the identity, and crop) is the one
real images take. The images are written as lossless PNGs to a temporary folder beside the
output and extracted by :func:`iadbench.features.extract.extract_features`; the index then points
at the source image and records the recipe drawn (``defect_type``), with label 1, split
``synthetic`` and sample id ``<id>#synthetic<k>``; the store's metadata adds ``synthetic``:
``{recipe, copies, seed}``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from iadbench.data.images import load_image
from iadbench.data.synthetic import draw_recipe, synthesize
from iadbench.errors import CacheError
from iadbench.features.store import read_meta, write_index

log = logging.getLogger(__name__)
SPLIT = "synthetic"


def synthetic_rng(seed: int, image: int, copy: int) -> np.random.Generator:
    """The generator of copy ``copy`` of normal train image ``image``."""
    return np.random.default_rng([int(seed), int(image), int(copy)])


def synthetic_images(
    normal: list[np.ndarray], recipe: str, copies: int, seed: int
) -> tuple[list[np.ndarray], list[str]]:
    """``copies`` anomalies of each image (image-major order) and the recipe each one drew."""
    images, recipes = [], []
    for i, image in enumerate(normal):
        for k in range(int(copies)):
            rng = synthetic_rng(seed, i, k)
            drawn = draw_recipe(rng, recipe)
            images.append(synthesize(image, rng, drawn, pool=normal)[0])
            recipes.append(drawn)
    return images, recipes


def extract_synthetic_features(
    manifest: pd.DataFrame,
    category: str,
    recipe: str,
    copies: int,
    seed: int,
    cfg,
    npy_path: str | Path,
    index_path: str | Path,
    device: str = "auto",
    batch_size: int = 16,
) -> dict:
    """Make, extract and cache the synthetic anomalies of one category; return the metadata.

    ``cfg`` is the backbone's :class:`~iadbench.features.extract.FeatureConfig` (the same as the
    real splits', so the store's config hash matches theirs).
    """
    from iadbench.features.extract import extract_features

    rows = manifest[
        (manifest["category"] == category)
        & (manifest["split"] == "train")
        & (manifest["label"] == 0)
    ].reset_index(drop=True)
    if rows.empty:
        raise CacheError(f"no normal train images for category {category!r} in the manifest")
    size = (cfg.geometry.resize, cfg.geometry.resize)
    normal = [
        np.asarray(Image.fromarray(load_image(p)).resize(size, Image.Resampling.BILINEAR))
        for p in rows["image_path"]
    ]
    images, recipes = synthetic_images(normal, recipe, copies, seed)
    source = np.repeat(np.arange(len(rows)), int(copies))
    copy = np.tile(np.arange(int(copies)), len(rows))
    ids = rows["sample_id"].to_numpy()
    index = pd.DataFrame(
        {
            "sample_id": [f"{sid}#synthetic{k}" for sid, k in zip(ids[source], copy)],
            "category": category,
            "split": SPLIT,
            "label": 1,
            "defect_type": recipes,
            "image_path": rows["image_path"].to_numpy()[source],
            "mask_path": None,
        }
    )
    out = Path(npy_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".synthetic-") as tmp:
        paths = []
        for j, image in enumerate(images):
            paths.append(str(Path(tmp) / f"{j:06d}.png"))
            Image.fromarray(image).save(paths[-1])
        frame = index.assign(image_path=paths)
        extract_features(
            frame, category, SPLIT, cfg, npy_path, index_path, device=device, batch_size=batch_size
        )
    meta = {**read_meta(Path(index_path)), "synthetic": {"recipe": recipe, "copies": int(copies),
                                                         "seed": int(seed)}}  # fmt: skip
    write_index(Path(index_path), index, meta)
    log.info("%s: %d synthetic %s anomalies (seed %d) -> %s", category, len(index), recipe, seed,
             npy_path)  # fmt: skip
    return meta
