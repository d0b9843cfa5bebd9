"""Provenance records: what produced an output, so that a result can be traced and reproduced.

A record holds the configuration block that drove the output (with the SHA-256 of its canonical
JSON), every input and model file by size and SHA-256, and the versions of the software that
ran. It holds no clock time or host name: two runs of the same inputs, settings and software
write byte-identical records, so comparing two results starts with comparing their records.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from vestnik.errors import VestnikError
from vestnik.io import write_json

PACKAGES = (
    "vestnik", "snakemake", "numpy", "soundfile", "soxr", "opencv-python-headless",
    "espeakng-loader", "num2words", "torch",
)
"""Distributions whose versions go into every record (those not installed are left out)."""
BLOCK_BYTES = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (model files may be large)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(BLOCK_BYTES):
                digest.update(block)
    except OSError as exc:
        raise VestnikError(f"cannot read the file to record it: {exc.strerror}", path=path) from exc
    return digest.hexdigest()


def config_hash(block: Mapping[str, Any]) -> str:
    """SHA-256 of a configuration block's canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(block, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _files(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    return [
        {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": sha256_file(path)}
        for path in paths
    ]


@functools.cache
def _ffmpeg_version() -> str:
    from vestnik.media import ffmpeg_exe

    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "unavailable"
    return (proc.stdout.splitlines() or ["unknown"])[0]


@functools.cache
def software_versions() -> dict[str, str]:
    """Python, the installed distributions in PACKAGES, and the ffmpeg binary that runs."""
    from vestnik import __version__

    versions = {"python": platform.python_version(), "vestnik": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["ffmpeg"] = _ffmpeg_version()
    return versions


def provenance(
    settings: Mapping[str, Any],
    inputs: Iterable[str | os.PathLike],
    checkpoints: Iterable[str | os.PathLike] = (),
    outputs: Iterable[str | os.PathLike] = (),
) -> dict[str, Any]:
    """The record of one result: its config block, input/model/output file hashes, versions.

    `settings` is everything configured for the result (for a job: its input, merged settings
    and frame rate; for a model: its experiment block); `inputs` are the files it was made from,
    `checkpoints` the model weights that ran, `outputs` the files the record describes.
    """
    settings = dict(settings)
    return {
        "config_sha256": config_hash(settings),
        "config": settings,
        "inputs": _files(inputs),
        "checkpoints": _files(checkpoints),
        "outputs": _files(outputs),
        "software": dict(software_versions()),
    }


def write_provenance(
    path: str | os.PathLike,
    settings: Mapping[str, Any],
    inputs: Iterable[str | os.PathLike],
    checkpoints: Iterable[str | os.PathLike] = (),
    outputs: Iterable[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Write `provenance(...)` as JSON beside the result (atomically) and return it."""
    record = provenance(settings, inputs, checkpoints, outputs)
    write_json(path, record)
    return record


def job_provenance_inputs(
    config: Mapping[str, Any], job: str, settings: Mapping[str, Any]
) -> tuple[dict, list[str], list[str]]:
    """(config block, input files, model files) of a workflow job, for `provenance`.

    `settings` are the job's checked settings (`config.check_job`), which the workflow keeps
    once per job. The block is the job's own input, those settings and the frame rate; the
    input files are its text or audio file and its avatar; the model files are those its
    engines load (a Wav2Lip checkpoint, the neural TTS models), where they exist.
    """
    from vestnik.config import job_input, job_transcript

    settings = dict(settings)
    kind, value = job_input(dict(config), job)
    transcript = job_transcript(dict(config), job)
    given = {kind: value, **(dict([transcript]) if transcript else {})}
    block = {"job": job, "input": given, "settings": settings, "fps": config["fps"]}
    inputs = [v for k, v in given.items() if k in ("text_file", "audio")]
    inputs.append(settings["avatar"])
    from vestnik import engines

    models = [
        weight.path
        for kind in ("lipsync", "tts")
        for weight in engines.weight_files(settings, kind).values()
    ]
    return (
        block,
        [str(p) for p in inputs if p and Path(p).is_file()],
        [str(p) for p in models if p and Path(p).is_file()],
    )
