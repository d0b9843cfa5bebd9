# Run-wide tables and charts for `snakemake --report`: runtime and memory per rule, stats per job.


rule run_report:
    input:
        stats=expand("results/jobs/{job}/stats.json", job=JOBS),
        videos=expand("results/jobs/{job}/final.mp4", job=JOBS),
    output:
        tsv=report(
            "results/report/benchmarks.tsv",
            caption="../report/benchmarks_tsv.rst",
            category="Performance",
        ),
        chart=report(
            "results/report/runtime_memory.png",
            caption="../report/runtime_memory.rst",
            category="Performance",
        ),
        rules=report(
            "results/report/rules.html",
            caption="../report/rules_table.rst",
            category="Performance",
        ),
        jobs=report(
            "results/report/jobs.html",
            caption="../report/jobs_table.rst",
            category="Performance",
        ),
        gallery=report(
            "results/report/videos.html",
            caption="../report/videos.rst",
            category="Videos",
        ),
    params:
        jobs=JOBS,
        patterns=lambda wildcards: {
            r.name: str(r.benchmark) for r in workflow.rules if r.benchmark
        },
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/report/run_report.log",
    script:
        "../scripts/run_report.py"


rule vocoder_report:
    input:
        generator="results/models/vocoder/{name}/generator.pt",
        metrics="results/models/vocoder/{name}/eval/metrics.json",
    output:
        page=report(
            "results/models/vocoder/{name}/report/validation.html",
            caption="../report/vocoder_validation.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "validation.html"},
        ),
        log=report(
            "results/models/vocoder/{name}/report/train_log.csv",
            caption="../report/vocoder_train_log.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "train_log.csv"},
        ),
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    conda:
        "../envs/vestnik.yaml"
    params:
        samples="samples",
    log:
        "logs/vocoder/{name}/report.log",
    script:
        "../scripts/experiment_report.py"


rule acoustic_report:
    input:
        model="results/models/acoustic/{name}/model.pt",
    output:
        page=report(
            "results/models/acoustic/{name}/report/validation.html",
            caption="../report/acoustic_validation.rst",
            category="Acoustic model",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "validation.html"},
        ),
        log=report(
            "results/models/acoustic/{name}/report/train_log.csv",
            caption="../report/acoustic_train_log.rst",
            category="Acoustic model",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "train_log.csv"},
        ),
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    conda:
        "../envs/vestnik.yaml"
    params:
        samples="plots",
    log:
        "logs/acoustic/{name}/report.log",
    script:
        "../scripts/experiment_report.py"
