"""Snakemake adapter: score an acoustic model on the held-out recordings of the validation set."""

import torch

from vestnik.acoustic.evaluate import evaluate_acoustic
from vestnik.corpus.preprocess import CleanSettings
from vestnik.runner import run_step

torch.set_num_threads(snakemake.threads)
run_step(
    snakemake,
    lambda: evaluate_acoustic(
        snakemake.input.model,
        snakemake.input.val,
        dict(snakemake.output.items()),
        corpus_root=snakemake.params.corpus_root,
        clean=CleanSettings.from_config(snakemake.params.clean),
    ),
)
