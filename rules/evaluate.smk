rule metrics:
    input:
        scores=rules.score.output.scores,
        maps=rules.score.output.maps,
        manifest=rules.manifest.output[0],
        state=rules.fit.output.state,
    output:
        "results/{dataset}/metrics/{method}/{category}.json",
    params:
        geometry=geometry_cfg,
        fpr_limit=config["fpr_limit"],
        method=method_cfg,
        backbone=lambda wc: config["backbones"][backbone_of(wc)],
    log:
        "results/logs/metrics/{dataset}/{method}/{category}.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../workflow/scripts/metrics.py"


rule aggregate:
    input:
        metrics=metric_targets,
        scores=score_targets("scores.parquet"),
        maps=score_targets("maps.npy"),
        manifests=expand("results/{dataset}/manifest.parquet", dataset=DATASETS),
    output:
        csv="results/summary/metrics.csv",
        md="results/summary/metrics.md",
    params:
        dataset_names=DATASETS,
        datasets={d: geometry_of(d) for d in DATASETS},
        grid=GRID,
        fpr_limit=config["fpr_limit"],
    log:
        "results/logs/aggregate.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    script:
        "../workflow/scripts/aggregate.py"



rule report:
    input:
        unpack(
            lambda wc: {"cross_domain": "results/summary/cross_domain.csv"}
            if config.get("cross_domain")
            else {}
        ),
        summary=rules.aggregate.output.csv,
        scores=score_targets("scores.parquet"),
        maps=score_targets("maps.npy"),
        manifests=expand("results/{dataset}/manifest.parquet", dataset=DATASETS),
        references=os.path.join(workflow.basedir, "config", "references.yaml"),
    output:
        html="results/summary/report.html",
        figures=directory("results/summary/report_figures"),
    params:
        score_items=report_items,
        title="iadbench results",
    log:
        "results/logs/report.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../workflow/scripts/report.py"
