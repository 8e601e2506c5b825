# Models: a per-category fit (one-class methods), one training on a named train set, or one
# multi-class training per dataset (all its categories together).


rule fit:
    input:
        unpack(fit_inputs),
    output:
        state=directory(FIT_STATE),
    log:
        log_of("fit", "{dataset}/{method}/{category}"),
    benchmark:
        benchmark_of("fit", "{dataset}/{method}/{category}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=120,
    params:
        method_cfg=method_cfg,
        backbone_cfg=backbone_cfg,
        geometry=geometry_cfg,
        device=config["device"],
    script:
        "../workflow/scripts/fit.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        state=directory(TRAINED),
    log:
        log_of("train", "{method}/{train_set}"),
    benchmark:
        benchmark_of("train", "{method}/{train_set}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=480,
    params:
        method_cfg=method_cfg,
        backbone_cfg=backbone_cfg,
        train_set_cfg=train_params,
        resume_root=RESUME_ROOT,
        device=config["device"],
    script:
        "../workflow/scripts/train.py"


rule train_dataset:
    input:
        manifest=rules.manifest.output[0],
    output:
        state=directory(DATASET_MODEL),
    log:
        log_of("train_dataset", "{dataset}/{method}"),
    benchmark:
        benchmark_of("train_dataset", "{dataset}/{method}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=480,
    params:
        method_cfg=method_cfg,
        train_set_cfg=dataset_train_params,
        resume_root=RESUME_ROOT,
        device=config["device"],
    script:
        "../workflow/scripts/train_dataset.py"
