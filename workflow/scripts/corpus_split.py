"""Snakemake adapter: manifest, rejects list and the deterministic train/val split."""

from vestnik.corpus.split import finalize_corpus
from vestnik.runner import run_step

run_step(
    snakemake,
    lambda: finalize_corpus(
        snakemake.input.scan,
        snakemake.input.shards,
        dict(snakemake.output.items()),
        snakemake.params.val_size,
        snakemake.params.seed,
    ),
)
