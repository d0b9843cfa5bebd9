"""Snakemake adapter: chunk plan of one job's speech."""

from vestnik.runner import run_step
from vestnik.steps import plan_job

run_step(
    snakemake,
    lambda: plan_job(
        snakemake.input.speech,
        snakemake.params.settings,
        snakemake.params.fps,
        snakemake.output[0],
        snakemake.input.timings,
    ),
    blocks_checked=True,  # the settings are this rule's checked params
)
