"""Snakemake adapter: benchmark table, runtime/memory chart, per-rule/per-job tables, videos."""

from vestnik.report import write_media_gallery, write_run_report
from vestnik.runner import run_step

out = snakemake.output
jobs = snakemake.params.jobs


def build():
    write_run_report(
        snakemake.params.patterns,
        list(snakemake.input.stats),
        jobs,
        out.tsv,
        out.chart,
        out.rules,
        out.jobs,
    )
    write_media_gallery(
        dict(zip(jobs, snakemake.input.videos, strict=True)),
        dict(zip(jobs, snakemake.input.stats, strict=True)),
        out.gallery,
    )


run_step(snakemake, build)
