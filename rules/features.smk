rule extract:
    input:
        manifest=rules.manifest.output[0],
    output:
        npy=path(FEATURES, ext="npy"),
        index=path(FEATURES, ext="parquet"),
    log:
        log_of("extract", "{dataset}/{backbone}/{category}/{split}"),
    benchmark:
        benchmark_of("extract", "{dataset}/{backbone}/{category}/{split}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    params:
        backbone_cfg=backbone_cfg,
        geometry=geometry_cfg,
        device=config["device"],
    script:
        "../workflow/scripts/extract.py"


rule extract_synthetic:
    input:
        manifest=rules.manifest.output[0],
    output:
        npy=path(SYNTHETIC_FEATURES, ext="npy"),
        index=path(SYNTHETIC_FEATURES, ext="parquet"),
    log:
        log_of("extract_synthetic", "{dataset}/{backbone}/{category}/{recipe}-n{copies}-s{seed}"),
    benchmark:
        benchmark_of(
            "extract_synthetic", "{dataset}/{backbone}/{category}/{recipe}-n{copies}-s{seed}"
        )
    wildcard_constraints:
        recipe="[a-z_]+",
        copies="[0-9]+",
        seed="[0-9]+",
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    params:
        backbone_cfg=backbone_cfg,
        geometry=geometry_cfg,
        device=config["device"],
    script:
        "../workflow/scripts/extract_synthetic.py"


rule embed:
    input:
        manifest=rules.manifest.output[0],
    output:
        npy=path(EMBEDDINGS, ext="npy"),
        index=path(EMBEDDINGS, ext="parquet"),
    log:
        log_of("embed", "{dataset}/{encoder}/{modality}/{category}/{split}"),
    benchmark:
        benchmark_of("embed", "{dataset}/{encoder}/{modality}/{category}/{split}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    params:
        dataset_cfg=encoder_dataset,
        encoder_cfg=encoder_cfg,
        backbones_cfg=encoder_backbones,
        device=config["device"],
    script:
        "../workflow/scripts/embed.py"
