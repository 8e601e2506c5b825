"""Snakemake entry: train one multi-class method once on a dataset's train split, all of its
categories together (resumable)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import train_method

    train_method(
        sm.wildcards.method,
        sm.params.method_cfg,
        None,
        sm.wildcards.dataset,
        sm.params.train_set_cfg,
        {"manifest": sm.input.manifest},
        sm.output.state,
        sm.params.resume_root,
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
