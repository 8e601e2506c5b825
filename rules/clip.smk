# CLIP encoders' outputs, computed once and shared by every method and grid cell that reads
# them: visual outputs, frozen streams (every epoch and seed of the trained heads that start
# from them) and window embeddings per (dataset, backbone, category, split), sentence
# embeddings per (backbone, prompt set, class name), noisy prototypes per (those, sigma, R,
# seed). Method options never reach these jobs, except the visual options of a kind's own view
# (Crane's refined path), which name it.


rule clip_visual:
    input:
        manifest=rules.manifest.output[0],
    output:
        CLIP_VISUAL,
    log:
        log_of("clip_visual", "{dataset}/{backbone}/{category}/{split}/{view}"),
    benchmark:
        benchmark_of("clip_visual", "{dataset}/{backbone}/{category}/{split}/{view}")
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
        options=view_options,
        device=config["device"],
    script:
        "../workflow/scripts/clip_visual.py"


rule clip_frozen:
    input:
        manifest=rules.manifest.output[0],
    output:
        tokens=CLIP_FROZEN,
        meta=CLIP_FROZEN_META,
    log:
        log_of("clip_frozen", "{dataset}/{backbone}/{category}/{split}/{view}"),
    benchmark:
        benchmark_of("clip_frozen", "{dataset}/{backbone}/{category}/{split}/{view}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=120,
    params:
        backbone_cfg=backbone_cfg,
        geometry=geometry_cfg,
        device=config["device"],
    script:
        "../workflow/scripts/clip_frozen.py"


rule clip_windows:
    input:
        manifest=rules.manifest.output[0],
    output:
        CLIP_WINDOWS,
    log:
        log_of("clip_windows", "{dataset}/{backbone}/{category}/{split}/{sizes}"),
    benchmark:
        benchmark_of("clip_windows", "{dataset}/{backbone}/{category}/{split}/{sizes}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=120,
    params:
        backbone_cfg=backbone_cfg,
        geometry=geometry_cfg,
        device=config["device"],
    script:
        "../workflow/scripts/clip_windows.py"


rule text_embeddings:
    output:
        TEXT,
    log:
        log_of("text_embeddings", "{backbone}/{prompts}/{class_slug}"),
    benchmark:
        benchmark_of("text_embeddings", "{backbone}/{prompts}/{class_slug}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        encoder_cfg=text_encoder_cfg,
        prompts=prompt_set_cfg,
        class_name=lambda wc: unquote_plus(wc.class_slug),
        device=config["device"],
    script:
        "../workflow/scripts/text_embeddings.py"


rule text_bayes:
    output:
        BAYES_TEXT,
    log:
        log_of(
            "text_bayes",
            "{backbone}/{prompts}/{class_slug}/bayes-s{sigma}-r{samples}-seed{seed}",
        ),
    benchmark:
        benchmark_of(
            "text_bayes",
            "{backbone}/{prompts}/{class_slug}/bayes-s{sigma}-r{samples}-seed{seed}",
        )
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        encoder_cfg=text_encoder_cfg,
        prompts=prompt_set_cfg,
        class_name=lambda wc: unquote_plus(wc.class_slug),
        device=config["device"],
    script:
        "../workflow/scripts/text_bayes.py"
