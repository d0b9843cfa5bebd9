# Vestnik: Russian text or voice -> lip-synced talking-head video.
# `snakemake --cores all` renders every job in config/config.yaml; see README.md.
from pathlib import Path

from snakemake.utils import min_version

from vestnik.config import read_yaml, sort_keys, validate_config

min_version("9.0")

# Snakemake's own report of a YAML syntax error names neither the line nor the problem.
if Path("config/config.yaml").is_file():
    read_yaml("config/config.yaml")


configfile: "config/config.yaml"


# Every default comes from the schema (config/schema.yaml, shipped in the package); each job's
# own entry is checked per job (workflow/rules/common.smk), so one bad job fails alone.
validate_config(config)
JOB_ORDER = list(config["jobs"])  # the order jobs are written in; they finish in it
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
include: "workflow/rules/revoice.smk"
include: "workflow/rules/video.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/vocoder.smk"
include: "workflow/rules/acoustic.smk"


rule all:
    input:
        expand(layout.FINAL_VIDEO, job=JOBS),
        expand(layout.STATS, job=JOBS),
        every_chunk_video,
        every_faces_file,
        layout.RUNTIME_CHART,
        layout.JOBS_TABLE,
    default_target: True


# Training target (never part of `all`): every vocoder experiment in `vocoder.train`, trained and
# evaluated on the validation set, and every acoustic model in `acoustic.train`.
rule train:
    input:
        expand(layout.VOCODER_GENERATOR, name=VOCODER_TRAIN),
        expand(layout.VOCODER_METRICS, name=VOCODER_TRAIN),
        expand(layout.VOCODER_REPORT, name=VOCODER_TRAIN),
        expand(layout.ACOUSTIC_MODEL, name=ACOUSTIC_TRAIN),
        expand(layout.ACOUSTIC_METRICS, name=ACOUSTIC_TRAIN),
        expand(layout.ACOUSTIC_REPORT, name=ACOUSTIC_TRAIN),
