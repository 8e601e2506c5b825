"""Snakemake entry: per-category metrics JSON of one split, with provenance."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import compute_metrics, provenance
    from iadbench.pipeline.evaluation import read_state

    state = read_state(sm.input.get("state"))  # once: provenance and the operating point
    compute_metrics(
        sm.input.scores,
        sm.input.maps,
        sm.input.manifest,
        sm.params.geometry,
        provenance(sm.wildcards, sm.params.method_cfg, state),
        sm.output[0],
        fpr_limit=sm.params.fpr_limit,
        val_scores=sm.input.get("val_scores"),
        state=state,
    )


entry(main, snakemake)  # noqa: F821
