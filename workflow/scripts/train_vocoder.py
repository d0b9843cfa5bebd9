"""Snakemake adapter: train (or resume) one HiFi-GAN experiment and export its generator."""

from pathlib import Path

from vestnik.runner import run_step
from vestnik.vocoder.train import train_vocoder

run_step(
    snakemake,
    lambda: train_vocoder(
        snakemake.wildcards.name,
        snakemake.params.block,
        snakemake.input.train,
        snakemake.input.val,
        Path(snakemake.output.generator).parent,
        threads=snakemake.threads,
        gpu=snakemake.config.get("gpu"),  # not a param: slots never retrain
    ),
)
