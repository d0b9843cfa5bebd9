"""Snakemake adapter: merged video of one job."""

from vestnik.runner import run_step
from vestnik.steps import merge_job

run_step(
    snakemake,
    lambda: merge_job(
        list(snakemake.input.videos),
        snakemake.input.speech,
        snakemake.output.video,
        snakemake.output.provenance,
        snakemake.params.record,
    ),
)
