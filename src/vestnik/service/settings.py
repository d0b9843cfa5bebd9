"""Service settings: where the workflow lives, where runs go, and every limit, in one place."""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vestnik.config import ROOT

DEFAULT_PORT = 3000
LANGUAGES = ("ru",)
"""Languages the pipeline speaks: the text normalizer and the eSpeak voice are Russian."""


def default_snakemake() -> str:
    """The `snakemake` beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("snakemake")
    if beside.is_file():
        return str(beside)
    return shutil.which("snakemake") or "snakemake"


@dataclass
class ServiceSettings:
    """Everything the service needs; `vestnik serve` fills it from its options.

    `concurrency` and `cores_per_run` of None are derived when the service starts: concurrency
    is the number of GPU slots of the config's `gpu:` block, or 1 without GPUs, and each run gets
    an equal share of the CPU cores. Every run may use all GPU slots (`--resources gpu=N`); the
    slot locks of vestnik.slots decide which chunk gets which slot across runs.
    """

    project_dir: Path = ROOT
    config_path: Path = ROOT / "config" / "config.yaml"
    runs_dir: Path = ROOT / "results" / "service"
    avatar_dirs: tuple[Path, ...] = (ROOT / "resources",)
    snakemake: str = field(default_factory=default_snakemake)
    concurrency: int | None = None
    queue_size: int = 8
    cores_per_run: int | None = None
    max_body_bytes: int = 64 * 1024
    max_text_chars: int = 5000
    max_workers: int = 8
    run_timeout: float = 600.0
    job_ttl: float = 3600.0
    cleanup_interval: float = 60.0

    @property
    def snakefile(self) -> Path:
        return self.project_dir / "Snakefile"

    def cpu_cores(self) -> int:
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:
            return os.cpu_count() or 1


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
