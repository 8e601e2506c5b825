# Cross-domain grid: fit on category A (the usual fit target), score category B's test split,
# and measure how far apart A's and B's training features are.


rule score_cross:
    input:
        state="results/{dataset}/models/{method}/{train_category}",
        npy=feature_file("npy", "test"),
        index=feature_file("parquet", "test"),
    output:
        scores="results/{dataset}/cross/{method}/{train_category}/{category}/scores.parquet",
        maps="results/{dataset}/cross/{method}/{train_category}/{category}/maps.npy",
    params:
        method=method_cfg,
        backbone=backbone_cfg,
        geometry=geometry_cfg,
        device=config["device"],
    log:
        "results/logs/score_cross/{dataset}/{method}/{train_category}/{category}.log",
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    script:
        "../workflow/scripts/score.py"


rule metrics_cross:
    input:
        scores=rules.score_cross.output.scores,
        maps=rules.score_cross.output.maps,
        manifest=rules.manifest.output[0],
        state="results/{dataset}/models/{method}/{train_category}",
    output:
        "results/{dataset}/cross/{method}/{train_category}/{category}.json",
    params:
        geometry=geometry_cfg,
        fpr_limit=config["fpr_limit"],
        method=method_cfg,
    log:
        "results/logs/metrics_cross/{dataset}/{method}/{train_category}/{category}.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../workflow/scripts/metrics.py"


rule domain_distance:
    input:
        a_npy="results/{dataset}/features/{backbone}/{train_category}/train.npy",
        a_index="results/{dataset}/features/{backbone}/{train_category}/train.parquet",
        b_npy="results/{dataset}/features/{backbone}/{category}/train.npy",
        b_index="results/{dataset}/features/{backbone}/{category}/train.parquet",
    output:
        "results/{dataset}/domain/{backbone}/{train_category}/{category}.json",
    params:
        backbone=lambda wc: config["backbones"][wc.backbone],
        geometry=geometry_cfg,
        seed=0,
        max_samples=2000,
    log:
        "results/logs/domain_distance/{dataset}/{backbone}/{train_category}/{category}.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../workflow/scripts/domain_distance.py"


rule cross_summary:
    input:
        metrics=lambda wc: [cross_metric(c) for c in cross_cells()],
        distances=lambda wc: [cross_distance(c) for c in cross_cells()],
    output:
        "results/summary/cross_domain.csv",
    params:
        cells=lambda wc: cross_cells(),
    log:
        "results/logs/cross_summary.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/cross_summary.py"
