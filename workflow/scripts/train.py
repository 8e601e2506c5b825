"""Snakemake entry: train one method once on a named train set (resumable)."""

from iadbench.logs import logged
from iadbench.pipeline import train_method

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    train_method(
        sm.wildcards.method,
        sm.params.method,
        sm.params.backbone,
        sm.wildcards.train_set,
        sm.params.train_set,
        {
            "manifest": sm.input.manifest,
            "npy": sm.input.get("npy"),
            "index": sm.input.get("index"),
            "text": sm.input.get("text"),
            "frozen": sm.input.get("frozen"),
            "frozen_tokens": sm.input.get("frozen_tokens"),
        },
        sm.output.state,
        sm.params.resume_root,
        device=sm.params.device,
    )
