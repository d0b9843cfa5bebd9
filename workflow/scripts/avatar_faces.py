"""Snakemake adapter: face box and landmarks of one avatar, once for all its jobs."""

from vestnik.runner import run_step
from vestnik.steps import fit_faces

run_step(
    snakemake,
    lambda: fit_faces(
        snakemake.params.avatar,
        snakemake.wildcards.model,
        snakemake.output[0],
        list(snakemake.params.jobs),
    ),
)
