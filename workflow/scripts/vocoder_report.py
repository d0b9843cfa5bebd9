"""Snakemake adapter: a report page (metrics, validation curve, samples) per vocoder run."""

from pathlib import Path

from vestnik.report import write_experiment_page
from vestnik.runner import run_step

run_step(
    snakemake,
    lambda: write_experiment_page(
        snakemake.wildcards.name,
        Path(snakemake.input.generator).parent,
        snakemake.output.page,
        snakemake.output.log,
    ),
)
