# Results marked report(...) make Snakemake's own report (snakemake --report report.html): the
# tables by name, the project report's figures filed by iadbench.smk_report.
from iadbench.smk_report import SUMMARY, TABLES, TIMINGS, figure_category, figure_subcategory


rule metrics:
    input:
        unpack(model_for),
        unpack(operating_inputs),
        scores=rules.score.output.scores,
        maps=rules.score.output.maps,
        manifest=rules.manifest.output[0],
    output:
        METRICS,
    log:
        log_of("metrics", "{dataset}/{method}/{category}/{split}"),
    benchmark:
        benchmark_of("metrics", "{dataset}/{method}/{category}/{split}")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        geometry=geometry_cfg,
        fpr_limit=config["fpr_limit"],
        method_cfg=method_cfg,
    script:
        "../workflow/scripts/metrics.py"


rule micro:
    input:
        unpack(micro_inputs),
        manifest=rules.manifest.output[0],
    output:
        MICRO,
    log:
        log_of("micro", "{dataset}/{method}"),
    benchmark:
        benchmark_of("micro", "{dataset}/{method}")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        geometry=geometry_cfg,
        fpr_limit=config["fpr_limit"],
        grid=grid_cell,
    script:
        "../workflow/scripts/micro.py"


rule summary:
    input:
        metrics=metric_targets,
        micro=micro_targets,
    output:
        **cross_dataset_outputs(),
        csv=report(
            SUMMARY_CSV,
            caption="../workflow/report/metrics.rst",
            category=SUMMARY,
            subcategory=TABLES,
            labels={"table": "metrics.csv"},
        ),
        md=SUMMARY_MD,
    log:
        log_of("summary", "summary"),
    benchmark:
        benchmark_of("summary", "summary")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        grid=GRID,
    script:
        "../workflow/scripts/summary.py"


rule latency:
    input:
        unpack(model_for),
        manifest=rules.manifest.output[0],
    output:
        LATENCY,
    log:
        log_of("latency", "{dataset}/{method}/{category}"),
    benchmark:
        benchmark_of("latency", "{dataset}/{method}/{category}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=30,
    params:
        method_cfg=method_cfg,
        backbone_cfg=backbone_cfg,
        geometry=geometry_cfg,
        images=lambda wc: config["latency"]["images"],
        device=config["device"],
    script:
        "../workflow/scripts/latency.py"


rule latency_summary:
    input:
        latency_inputs,
    output:
        report(
            LATENCY_CSV,
            caption="../workflow/report/latency.rst",
            category=SUMMARY,
            subcategory=TABLES,
            labels={"table": "latency.csv"},
        ),
    log:
        log_of("latency_summary", "latency_summary"),
    benchmark:
        benchmark_of("latency_summary", "latency_summary")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        cells=latency_items,
    script:
        "../workflow/scripts/latency_summary.py"


rule cascade_sweeps:
    input:
        sweep_states,
    output:
        report(
            SWEEP_CSV,
            caption="../workflow/report/cascade_sweep.rst",
            category=SUMMARY,
            subcategory=TABLES,
            labels={"table": "cascade_sweep.csv"},
        ),
    log:
        log_of("cascade_sweeps", "cascade_sweeps"),
    benchmark:
        benchmark_of("cascade_sweeps", "cascade_sweeps")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        cells=lambda wc: [c for c in result_cells() if is_cascade(c[0])],
    script:
        "../workflow/scripts/cascade_sweeps.py"


rule variance:
    input:
        path(SCORES, split="test", file="scores.parquet"),
    output:
        csv=VARIANCE_CSV,
        png=VARIANCE_PNG,
    log:
        log_of("variance", "{dataset}/{method}/{category}"),
    benchmark:
        benchmark_of("variance", "{dataset}/{method}/{category}")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        title=variance_title,
    script:
        "../workflow/scripts/variance.py"


rule timings:
    # Runs after every other result (its inputs) and before the report; lists every benchmark
    # file present then, including earlier runs' jobs whose results are still cached.
    input:
        rules.summary.output.csv,
        val_targets(),
        cross_domain_outputs(),
        latency_outputs(),
        sweep_outputs(),
        variance_outputs(),
    output:
        report(
            TIMINGS_CSV,
            caption="../workflow/report/timings.rst",
            category=TIMINGS,
            subcategory=TABLES,
            labels={"table": "timings.csv"},
        ),
    log:
        log_of("timings", "timings"),
    benchmark:
        benchmark_of("timings", "timings")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        root=BENCHMARKS,
        logs=LOGS,
        patterns=lambda wc: BENCHMARK_PATTERNS,
    script:
        "../workflow/scripts/timings.py"


rule report:
    input:
        unpack(lambda wc: {"cross_domain": CROSS_SUMMARY} if config.get("cross_domain") else {}),
        unpack(lambda wc: {"latency": LATENCY_CSV} if config.get("latency") else {}),
        unpack(lambda wc: {"sweeps": SWEEP_CSV} if sweep_outputs() else {}),
        summary=rules.summary.output.csv,
        timings=TIMINGS_CSV,
        scores=score_targets("scores.parquet"),
        maps=score_targets("maps.npy"),
        manifests=manifest_files(),
        models=lambda wc: list(loss_curve_models().values()),
        references=workflow.source_path("../config/references.yaml"),
    output:
        html=report(
            REPORT_HTML,
            caption="../workflow/report/project_report.rst",
            category=SUMMARY,
            subcategory="Project report",
            labels={"report": "report.html"},
        ),
        figures=report(
            directory(REPORT_FIGURES),
            patterns=["{figure}.png"],
            caption="../workflow/report/figure.rst",
            category=figure_category,
            subcategory=figure_subcategory,
            labels={"figure": "{figure}"},
        ),
    log:
        log_of("report", "report"),
    benchmark:
        benchmark_of("report", "report")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        score_items=report_items,
        cascades=lambda wc: {m: config["methods"][m]["uses"] for m in METHODS if is_cascade(m)},
        trained_models=lambda wc: loss_curve_models(),
        title="iadbench results",
    script:
        "../workflow/scripts/report.py"
