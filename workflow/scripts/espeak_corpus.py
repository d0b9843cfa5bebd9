"""Snakemake adapter: the eSpeak NG demo corpus in RUSLAN's layout."""

from pathlib import Path

from vestnik.corpus.espeak_corpus import build_espeak_corpus
from vestnik.runner import run_step

run_step(
    snakemake,
    lambda: build_espeak_corpus(snakemake.input[0], Path(snakemake.output.metadata).parent),
)
