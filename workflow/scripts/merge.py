"""Snakemake adapter: merged video, provenance and stats of one job."""

from vestnik.runner import run_step
from vestnik.steps import finish_job

inputs, output = snakemake.input, snakemake.output
run_step(
    snakemake,
    lambda: finish_job(
        snakemake.wildcards.job,
        list(inputs.videos),
        inputs.speech,
        output.video,
        output.provenance,
        snakemake.params.record,
        {"tts": list(inputs.tts), "plan": [inputs.plan]},
        list(inputs.timings),
        inputs.speech_json,
        output.stats,
    ),
)
