# Vestnik: Russian text or voice -> lip-synced talking-head video.
# `snakemake --cores all` renders every job in config/config.yaml; see README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


report: "workflow/report/workflow.rst"


wildcard_constraints:
    job=r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}",
    i=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/tts.smk"
include: "workflow/rules/video.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/vocoder.smk"


rule all:
    input:
        expand("results/jobs/{job}/final.mp4", job=JOBS),
        expand("results/jobs/{job}/stats.json", job=JOBS),
        "results/report/runtime_memory.png",
        "results/report/jobs.html",
    default_target: True


# Training target (never part of `all`): every vocoder experiment in `vocoder.train`, trained and
# evaluated on the validation set.
rule train:
    input:
        expand("results/models/vocoder/{name}/generator.pt", name=VOCODER_TRAIN),
        expand("results/models/vocoder/{name}/eval/metrics.json", name=VOCODER_TRAIN),
        expand("results/models/vocoder/{name}/report/validation.html", name=VOCODER_TRAIN),
