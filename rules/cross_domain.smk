# Cross-category study: a per-category fit (model_for with train_category) scores another
# category of the same dataset; domain distances measure how far apart the two are.


use rule score as score_cross with:
    output:
        scores=path(CROSS_SCORES, file="scores.parquet"),
        maps=path(CROSS_SCORES, file="maps.npy"),
    log:
        log_of("score_cross", "{dataset}/{method}/{train_category}/{category}/{split}"),
    benchmark:
        benchmark_of("score_cross", "{dataset}/{method}/{train_category}/{category}/{split}")


use rule metrics as metrics_cross with:
    input:
        unpack(model_for),
        unpack(operating_inputs),
        scores=rules.score_cross.output.scores,
        maps=rules.score_cross.output.maps,
        manifest=rules.manifest.output[0],
    output:
        CROSS_METRICS,
    log:
        log_of("metrics_cross", "{dataset}/{method}/{train_category}/{category}/{split}"),
    benchmark:
        benchmark_of("metrics_cross", "{dataset}/{method}/{train_category}/{category}/{split}")


rule domain_distance:
    input:
        a_npy=path(FEATURES, category="{train_category}", split="train", ext="npy"),
        a_index=path(FEATURES, category="{train_category}", split="train", ext="parquet"),
        b_npy=path(FEATURES, split="train", ext="npy"),
        b_index=path(FEATURES, split="train", ext="parquet"),
    output:
        DOMAIN,
    log:
        log_of("domain_distance", "{dataset}/{backbone}/{train_category}/{category}"),
    benchmark:
        benchmark_of("domain_distance", "{dataset}/{backbone}/{train_category}/{category}")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        backbone_cfg=backbone_cfg,
        geometry=geometry_cfg,
        seed=0,
        max_samples=2000,
    script:
        "../workflow/scripts/domain_distance.py"


rule cross_summary:
    input:
        metrics=lambda wc: [cross_metric(c) for c in cross_cells()],
        distances=lambda wc: [cross_distance(c) for c in cross_cells()],
    output:
        report(
            CROSS_SUMMARY,
            caption="../workflow/report/cross_domain.rst",
            category=SUMMARY,
            subcategory=TABLES,
            labels={"table": "cross_domain.csv"},
        ),
    log:
        log_of("cross_summary", "cross_summary"),
    benchmark:
        benchmark_of("cross_summary", "cross_summary")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        cells=lambda wc: cross_cells(),
    script:
        "../workflow/scripts/cross_summary.py"
