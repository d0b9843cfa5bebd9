"""Snakemake adapter: resynthesise the validation set with a generator and score it."""

from vestnik.runner import run_step
from vestnik.vocoder.evaluate import evaluate_vocoder

run_step(
    snakemake,
    lambda: evaluate_vocoder(
        snakemake.input.generator,
        snakemake.input.val,
        dict(snakemake.output.items()),
        limit=snakemake.params.limit,
    ),
)
