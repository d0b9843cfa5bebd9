"""Snakemake adapter: the pieces of a re-voicing job and their words (vestnik.revoice)."""

from vestnik.config import check_job, job_input, job_transcript
from vestnik.runner import run_step
from vestnik.steps import plan_revoice_job

job = snakemake.wildcards.job


def plan():
    settings = check_job(snakemake.config, job)
    _, audio = job_input(snakemake.config, job)
    plan_revoice_job(job, settings, audio, job_transcript(snakemake.config, job),
                     snakemake.output.plan, snakemake.output.recording,
                     threads=snakemake.threads)


run_step(snakemake, plan)
