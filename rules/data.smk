rule demo_dataset:
    output:
        touch("{root}/.complete"),
    params:
        demo=lambda wc: demo_entry(wc.root)["demo"],
        categories=lambda wc: demo_entry(wc.root)["categories"],
    log:
        "results/logs/demo_dataset/{root}.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/demo_dataset.py"


checkpoint manifest:
    input:
        dataset_source,
    output:
        "results/{dataset}/manifest.parquet",
    params:
        dataset=dataset_cfg,
    log:
        "results/logs/manifest/{dataset}.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    script:
        "../workflow/scripts/manifest.py"
