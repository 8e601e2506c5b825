rule fit:
    input:
        npy=feature_file("npy", "train"),
        index=feature_file("parquet", "train"),
    output:
        state=directory("results/{dataset}/models/{method}/{category}"),
    params:
        method=method_cfg,
        backbone=lambda wc: config["backbones"][backbone_of(wc)],
        geometry=geometry_cfg,
        device=config["device"],
    log:
        "results/logs/fit/{dataset}/{method}/{category}.log",
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    script:
        "../workflow/scripts/fit.py"
