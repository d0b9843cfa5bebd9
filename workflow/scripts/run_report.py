"""Snakemake adapter: benchmark table, runtime/memory chart and per-rule and per-job tables."""

from vestnik.report import write_run_report
from vestnik.runner import run_step

out = snakemake.output
run_step(
    snakemake,
    lambda: write_run_report(
        snakemake.params.patterns,
        list(snakemake.input.stats),
        snakemake.params.jobs,
        out.tsv,
        out.chart,
        out.rules,
        out.jobs,
    ),
)
