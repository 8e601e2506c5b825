"""Snakemake entry: fit one method on one category's training split."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import fit_method

    fit_method(
        sm.params.method_cfg,
        sm.params.backbone_cfg,
        sm.params.geometry,
        dict(sm.input.items()),
        sm.wildcards.category,
        sm.output.state,
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
