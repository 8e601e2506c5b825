"""Snakemake entry: summary tables (per category, macro mean, micro) for every test result,
and the cross-dataset table of the methods trained on a train set."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import summarise_results

    summarise_results(
        sm.input.metrics, sm.input.micro, sm.output.csv, sm.output.md, grid=sm.params.grid
    )
    if "cross_csv" in sm.output.keys():
        from iadbench.report.training import write_cross_dataset

        write_cross_dataset(sm.output.csv, sm.output.cross_csv, sm.output.cross_md)


entry(main, snakemake)  # noqa: F821
