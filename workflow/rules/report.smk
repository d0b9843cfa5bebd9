# Run-wide tables and charts for `snakemake --report`: runtime and memory per rule, stats per job.


rule run_report:
    input:
        stats=expand(layout.STATS, job=JOBS),
        videos=expand(layout.FINAL_VIDEO, job=JOBS),
    output:
        tsv=report(
            layout.RUN_BENCHMARKS,
            caption="../report/benchmarks_tsv.rst",
            category="Performance",
        ),
        chart=report(
            layout.RUNTIME_CHART,
            caption="../report/runtime_memory.rst",
            category="Performance",
        ),
        rules=report(
            layout.RULES_TABLE,
            caption="../report/rules_table.rst",
            category="Performance",
        ),
        jobs=report(
            layout.JOBS_TABLE,
            caption="../report/jobs_table.rst",
            category="Performance",
        ),
        gallery=report(
            layout.GALLERY,
            caption="../report/videos.rst",
            category="Videos",
        ),
    params:
        jobs=JOBS,
        patterns=lambda wildcards: {
            r.name: str(r.benchmark) for r in workflow.rules if r.benchmark
        },
    conda:
        LIGHT_ENV
    log:
        fill(layout.REPORT_LOG, step="run_report"),
    script:
        "../scripts/run_report.py"


rule vocoder_report:
    input:
        generator=layout.VOCODER_GENERATOR,
        metrics=layout.VOCODER_METRICS,
    output:
        page=report(
            layout.VOCODER_REPORT,
            caption="../report/vocoder_validation.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "validation.html"},
        ),
        log=report(
            layout.VOCODER_TRAIN_LOG,
            caption="../report/vocoder_train_log.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "train_log.csv"},
        ),
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    conda:
        LIGHT_ENV
    params:
        kind="vocoder",
    log:
        fill(layout.MODEL_LOG, kind="vocoder", step="report"),
    script:
        "../scripts/experiment_report.py"


rule acoustic_report:
    input:
        model=layout.ACOUSTIC_MODEL,
        metrics=layout.ACOUSTIC_METRICS,
    output:
        page=report(
            layout.ACOUSTIC_REPORT,
            caption="../report/acoustic_validation.rst",
            category="Acoustic model",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "validation.html"},
        ),
        log=report(
            layout.ACOUSTIC_TRAIN_LOG,
            caption="../report/acoustic_train_log.rst",
            category="Acoustic model",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "train_log.csv"},
        ),
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    conda:
        LIGHT_ENV
    params:
        kind="acoustic",
    log:
        fill(layout.MODEL_LOG, kind="acoustic", step="report"),
    script:
        "../scripts/experiment_report.py"
