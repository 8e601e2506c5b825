"""Snakemake entry: one frozen encoder over one (dataset, category, split) of a weld manifest."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline.embeddings import embed

    embed(
        sm.input.manifest,
        sm.params.dataset_cfg,
        sm.wildcards.encoder,
        sm.params.encoder_cfg,
        sm.params.backbones_cfg,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.output.npy,
        sm.output.index,
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
