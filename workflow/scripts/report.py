"""Snakemake entry: the HTML report (tables, figures, published references) of all results."""

from iadbench.warm import entry


def main(sm):
    from iadbench.report import build_report

    build_report(
        sm.input.summary,
        sm.output.html,
        sm.output.figures,
        score_items=sm.params.score_items,
        cross_domain_csv=sm.input.get("cross_domain"),
        references=sm.input.get("references"),
        latency_csv=sm.input.get("latency"),
        sweeps_csv=sm.input.get("sweeps"),
        timings_csv=sm.input.get("timings"),
        cascades=sm.params.cascades,
        trained_models=sm.params.trained_models,
        title=sm.params.get("title", "iadbench results"),
    )


entry(main, snakemake)  # noqa: F821
