"""Snakemake adapter: fetch (or reuse) the festvox-ru package and convert it to RUSLAN's layout."""

from pathlib import Path

from vestnik.corpus import festvox
from vestnik.runner import run_step


def build() -> dict:
    source = snakemake.params.festvox_root or festvox.download(snakemake.params.download)
    return festvox.convert(source, Path(snakemake.output.metadata).parent)


run_step(snakemake, build)
