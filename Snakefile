# Vestnik: Russian text or voice -> lip-synced talking-head video.
# `snakemake --cores all` renders every job in config/config.yaml; see README.md.
from pathlib import Path

from snakemake.utils import min_version, validate

from vestnik.config import read_yaml, sort_keys

min_version("9.0")

# Snakemake's own report of a YAML syntax error names neither the line nor the problem.
if Path("config/config.yaml").is_file():
    read_yaml("config/config.yaml")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")
# Rules compare their params with the last run's as text: with sorted keys, a config that was
# only reordered reruns nothing.
SORTED_CONFIG = sort_keys(config)
config.clear()
config.update(SORTED_CONFIG)


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
include: "workflow/rules/acoustic.smk"


rule all:
    input:
        expand("results/jobs/{job}/final.mp4", job=JOBS),
        expand("results/jobs/{job}/stats.json", job=JOBS),
        every_chunk_video,
        "results/report/runtime_memory.png",
        "results/report/jobs.html",
    default_target: True


# Training target (never part of `all`): every vocoder experiment in `vocoder.train`, trained and
# evaluated on the validation set, and every acoustic model in `acoustic.train`.
rule train:
    input:
        expand("results/models/vocoder/{name}/generator.pt", name=VOCODER_TRAIN),
        expand("results/models/vocoder/{name}/eval/metrics.json", name=VOCODER_TRAIN),
        expand("results/models/vocoder/{name}/report/validation.html", name=VOCODER_TRAIN),
        expand("results/models/acoustic/{name}/model.pt", name=ACOUSTIC_TRAIN),
        expand("results/models/acoustic/{name}/report/validation.html", name=ACOUSTIC_TRAIN),
