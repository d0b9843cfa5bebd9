"""Snakemake adapter: resynthesise the validation set with a generator and score it."""

from pathlib import Path

from vestnik.runner import run_step
from vestnik.vocoder.evaluate import evaluate_vocoder

run_step(
    snakemake,
    lambda: evaluate_vocoder(
        snakemake.input.generator,
        snakemake.input.val,
        Path(snakemake.output.metrics).parent,
        limit=snakemake.params.limit,
    ),
)
