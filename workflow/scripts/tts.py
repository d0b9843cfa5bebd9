"""Snakemake adapter: speech for one job."""

from vestnik.runner import run_step
from vestnik.steps import synthesize_job

kind, value = snakemake.params.source
run_step(
    snakemake,
    lambda: synthesize_job(
        snakemake.wildcards.job,
        snakemake.params.settings,
        kind,
        value,
        snakemake.output.wav,
        snakemake.output.json,
    ),
)
