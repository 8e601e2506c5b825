rule extract:
    input:
        manifest=rules.manifest.output[0],
    output:
        npy="results/{dataset}/features/{backbone}/{category}/{split}.npy",
        index="results/{dataset}/features/{backbone}/{category}/{split}.parquet",
    params:
        backbone=lambda wc: config["backbones"][wc.backbone],
        geometry=geometry_cfg,
        device=config["device"],
    log:
        "results/logs/extract/{dataset}/{backbone}/{category}/{split}.log",
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    script:
        "../workflow/scripts/extract.py"
