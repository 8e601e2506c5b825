"""Snakemake entry: WinCLIP window embeddings of one (dataset, category, split)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import make_windows

    make_windows(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.params.backbone_cfg,
        sm.params.geometry,
        sm.wildcards.sizes,
        sm.output[0],
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
