"""Snakemake adapter: audio of one chunk."""

from vestnik.runner import run_step
from vestnik.steps import cut_chunk

run_step(
    snakemake,
    lambda: cut_chunk(
        snakemake.input.speech,
        snakemake.input.plan,
        int(snakemake.wildcards.i),
        snakemake.output[0],
    ),
)
