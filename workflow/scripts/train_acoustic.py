"""Snakemake adapter: train (or resume) one acoustic model experiment and export model.pt."""

from pathlib import Path

from vestnik.acoustic.train import train_acoustic
from vestnik.runner import run_step

run_step(
    snakemake,
    lambda: train_acoustic(
        snakemake.wildcards.name,
        snakemake.params.block,
        snakemake.input.train,
        snakemake.input.val,
        Path(snakemake.output.model).parent,
        threads=snakemake.threads,
        gpu=snakemake.config.get("gpu"),  # not a param: slots never retrain
    ),
)
