"""Snakemake adapter: speech for one job.

The job is checked here, from the config (its tts params hold only the TTS settings, so that
other settings never rerun it); a job that does not fit the schema fails with that message.
"""

from vestnik.config import check_job, job_input
from vestnik.runner import run_step
from vestnik.steps import synthesize_job

job = snakemake.wildcards.job


def synthesize():
    settings = check_job(snakemake.config, job)
    kind, value = job_input(snakemake.config, job)
    pieces = None
    if hasattr(snakemake.input, "plan"):  # a re-voiced recording's pieces (vestnik.revoice)
        pieces = (snakemake.input.plan, list(snakemake.input.piece_wavs),
                  list(snakemake.input.piece_records))
    synthesize_job(
        job,
        settings,
        kind,
        value,
        snakemake.output.wav,
        snakemake.output.json,
        gpu=snakemake.config.get("gpu"),
        pieces=pieces,
    )


run_step(snakemake, synthesize)
