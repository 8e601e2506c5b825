"""Snakemake entry: sentence embeddings of a prompt set for one class name."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import make_text

    make_text(
        sm.params.encoder_cfg,
        sm.params.prompts,
        sm.params.class_name,
        sm.output[0],
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
