"""Snakemake adapter: clean one shard of the corpus (22,050 Hz wavs + log-mels)."""

from pathlib import Path

from vestnik.corpus.preprocess import CleanSettings, process_shard
from vestnik.runner import run_step

run_step(
    snakemake,
    lambda: process_shard(
        Path(snakemake.input.wavs).parent,
        snakemake.input.scan,
        int(snakemake.wildcards.shard),
        snakemake.output[0],
        CleanSettings(**snakemake.params.clean),
    ),
)
