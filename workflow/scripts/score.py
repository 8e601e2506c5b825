"""Snakemake entry: score one (category, split) with a method and the model it reads."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import score_method

    score_method(
        sm.params.method_cfg,
        sm.params.backbone_cfg,
        sm.params.geometry,
        dict(sm.input.items()),
        sm.wildcards.category,
        sm.wildcards.split,
        sm.output.scores,
        sm.output.maps,
        device=sm.params.device,
        view_options=sm.params.view_options,
    )


entry(main, snakemake)  # noqa: F821
