rule demo_dataset:
    output:
        touch("{root}/.complete"),
    log:
        log_of("demo_dataset", "{root}"),
    benchmark:
        benchmark_of("demo_dataset", "{root}")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # the layout picks the generator (mvtec texture demo or synthetic weld runs)
        demo=lambda wc: {
            "layout": demo_entry(wc.root).get("layout", "mvtec"),
            **demo_entry(wc.root)["demo"],
        },
        categories=lambda wc: demo_entry(wc.root)["categories"],
    script:
        "../workflow/scripts/demo_dataset.py"


checkpoint manifest:
    input:
        unpack(dataset_source),
    output:
        MANIFEST,
    log:
        log_of("manifest", "{dataset}"),
    benchmark:
        benchmark_of("manifest", "{dataset}")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        dataset_cfg=dataset_cfg,
    script:
        "../workflow/scripts/manifest.py"
