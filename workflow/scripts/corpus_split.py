"""Snakemake adapter: manifest, rejects list and the deterministic train/val split."""

from pathlib import Path

from vestnik.corpus.split import finalize_corpus
from vestnik.runner import run_step

run_step(
    snakemake,
    lambda: finalize_corpus(
        snakemake.input.scan,
        snakemake.input.shards,
        Path(snakemake.output.manifest).parent,
        snakemake.params.val_size,
        snakemake.params.seed,
    ),
)
