"""Snakemake adapter: train (or resume) one vocoder or acoustic experiment and export its model."""

from pathlib import Path

from vestnik.runner import run_step


def train() -> Path:
    if snakemake.params.kind == "vocoder":
        from vestnik.vocoder.train import train_vocoder as train_model
    else:
        from vestnik.acoustic.train import train_acoustic as train_model
    return train_model(
        snakemake.wildcards.name,
        snakemake.params.block,
        snakemake.input.train,
        snakemake.input.val,
        Path(snakemake.output[0]).parent,
        threads=snakemake.threads,
        gpu=snakemake.config.get("gpu"),  # not a param: slots never retrain
    )


run_step(snakemake, train)
