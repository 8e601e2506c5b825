rule score:
    input:
        state=rules.fit.output.state,
        npy=feature_file("npy", "test"),
        index=feature_file("parquet", "test"),
    output:
        scores="results/{dataset}/scores/{method}/{category}/scores.parquet",
        maps="results/{dataset}/scores/{method}/{category}/maps.npy",
    params:
        method=method_cfg,
        backbone=lambda wc: config["backbones"][backbone_of(wc)],
        geometry=geometry_cfg,
        device=config["device"],
    log:
        "results/logs/score/{dataset}/{method}/{category}.log",
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    script:
        "../workflow/scripts/score.py"
