# Scoring any split of any dataset; which model a job reads is model_for()'s decision.


rule score:
    input:
        unpack(score_inputs),
    output:
        scores=path(SCORES, file="scores.parquet"),
        maps=path(SCORES, file="maps.npy"),
    log:
        log_of("score", "{dataset}/{method}/{category}/{split}"),
    benchmark:
        benchmark_of("score", "{dataset}/{method}/{category}/{split}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    params:
        method_cfg=method_cfg,
        backbone_cfg=backbone_cfg,
        geometry=geometry_cfg,
        view_options=method_view_options,
        device=config["device"],
    script:
        "../workflow/scripts/score.py"
