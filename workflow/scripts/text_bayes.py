"""Snakemake entry: R noisy prototype pairs of a prompt set for one class name (Bayes path)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import make_noisy_text

    make_noisy_text(
        sm.params.encoder_cfg,
        sm.params.prompts,
        sm.params.class_name,
        int(sm.wildcards.samples),
        float(sm.wildcards.sigma),
        int(sm.wildcards.seed),
        sm.output[0],
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
