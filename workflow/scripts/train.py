"""Snakemake entry: train one method once on a named train set (resumable)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import train_method

    train_method(
        sm.wildcards.method,
        sm.params.method_cfg,
        sm.params.backbone_cfg,
        sm.wildcards.train_set,
        sm.params.train_set_cfg,
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


entry(main, snakemake)  # noqa: F821
