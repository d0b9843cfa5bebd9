"""Snakemake adapter: one piece of a re-voicing job, aligned and spoken (vestnik.revoice)."""

from vestnik.config import check_job
from vestnik.runner import run_step
from vestnik.steps import revoice_piece_job

job = snakemake.wildcards.job


def piece():
    revoice_piece_job(job, check_job(snakemake.config, job), snakemake.input.plan,
                      snakemake.input.recording, int(snakemake.wildcards.i),
                      snakemake.output.wav, snakemake.output.json,
                      gpu=snakemake.config.get("gpu"))


run_step(snakemake, piece)
