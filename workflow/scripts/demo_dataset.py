"""Snakemake entry: generate the embedded demo dataset."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import make_demo

    make_demo(sm.wildcards.root, sm.params.demo, sm.params.categories)


entry(main, snakemake)  # noqa: F821
