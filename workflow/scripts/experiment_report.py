"""Snakemake adapter: a report page (metrics, validation curve, plots) per training run."""

from pathlib import Path

from vestnik.report import write_experiment_page
from vestnik.runner import run_step

run_step(
    snakemake,
    lambda: write_experiment_page(
        snakemake.wildcards.name,
        Path(snakemake.input[0]).parent,
        snakemake.output.page,
        snakemake.output.log,
        snakemake.params.kind,
    ),
)
