"""Adapter between Snakemake `script:` jobs and vestnik steps: logging and clean errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from vestnik.errors import VestnikError
from vestnik.io import remove_stale_temps


def setup_logging(log_path: str | None = None) -> None:
    """Log to stderr, and to `log_path` when given (Snakemake's per-job log file)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def run_step(smk: Any, step: Callable[[], object]) -> None:
    """Run one step inside a Snakemake job; a VestnikError exits 1 with only its message."""
    setup_logging(smk.log[0] if smk.log else None)
    removed = remove_stale_temps(smk.output)
    if removed:
        logging.getLogger("vestnik").info(
            "removed temporary files left by a killed run: %s", [str(p) for p in removed]
        )
    try:
        step()
    except VestnikError as exc:
        logging.getLogger("vestnik").error("%s (rule %s)", exc, smk.rule)
        sys.exit(1)
