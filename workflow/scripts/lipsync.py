"""Snakemake adapter: video of one chunk."""

from vestnik.runner import run_step
from vestnik.steps import render_chunk

run_step(
    snakemake,
    lambda: render_chunk(
        snakemake.wildcards.job,
        snakemake.params.settings,
        snakemake.params.fps,
        snakemake.input.plan,
        int(snakemake.wildcards.i),
        snakemake.input.speech_wav,
        snakemake.input.speech,
        snakemake.output.video,
        snakemake.output.timing,
        gpu=snakemake.config.get("gpu"),  # not a param: slots never rerun a chunk
        threads=snakemake.threads,
        faces_json=snakemake.input.faces[0] if snakemake.input.faces else None,
    ),
    blocks_checked=True,  # the settings are this rule's checked params
)
