"""Snakemake adapter: per-stage seconds and speed-up of one job."""

from vestnik.runner import run_step
from vestnik.steps import write_stats

inputs = snakemake.input
run_step(
    snakemake,
    lambda: write_stats(
        snakemake.wildcards.job,
        {
            "tts": [inputs.tts],
            "plan": [inputs.plan],
            "split": list(inputs.split),
            "merge": [inputs.merge],
        },
        list(inputs.timings),
        inputs.speech,
        snakemake.output[0],
    ),
)
