rule metrics:
    input:
        unpack(model_for),
        scores=rules.score.output.scores,
        maps=rules.score.output.maps,
        manifest=rules.manifest.output[0],
    output:
        METRICS,
    log:
        log_of("metrics", "{dataset}/{method}/{category}/{split}"),
    benchmark:
        benchmark_of("metrics", "{dataset}/{method}/{category}/{split}")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        geometry=geometry_cfg,
        fpr_limit=config["fpr_limit"],
        method=method_cfg,
    script:
        "../workflow/scripts/metrics.py"


rule summary:
    input:
        metrics=metric_targets,
        scores=score_targets("scores.parquet"),
        maps=score_targets("maps.npy"),
        manifests=manifest_files(),
    output:
        csv=SUMMARY_CSV,
        md=SUMMARY_MD,
    log:
        log_of("summary", "summary"),
    benchmark:
        benchmark_of("summary", "summary")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        dataset_names=DATASETS,
        datasets={d: geometry(d) for d in DATASETS},
        grid=GRID,
        fpr_limit=config["fpr_limit"],
    script:
        "../workflow/scripts/summary.py"


rule report:
    input:
        unpack(lambda wc: {"cross_domain": CROSS_SUMMARY} if config.get("cross_domain") else {}),
        summary=rules.summary.output.csv,
        scores=score_targets("scores.parquet"),
        maps=score_targets("maps.npy"),
        manifests=manifest_files(),
        references=os.path.join(workflow.basedir, "config", "references.yaml"),
    output:
        html=REPORT_HTML,
        figures=directory(REPORT_FIGURES),
    log:
        log_of("report", "report"),
    benchmark:
        benchmark_of("report", "report")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        score_items=report_items,
        title="iadbench results",
    script:
        "../workflow/scripts/report.py"
