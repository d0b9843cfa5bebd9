"""Snakemake adapter: first pass over the corpus (every row and wav gets a verdict)."""

from pathlib import Path

from vestnik.corpus.manifest import scan_corpus
from vestnik.runner import run_step

run_step(
    snakemake,
    lambda: scan_corpus(
        Path(snakemake.input.metadata).parent,
        snakemake.output[0],
        snakemake.params.shards,
        snakemake.params.source_rate,
    ),
)
