"""Adapter between Snakemake `script:` jobs and vestnik steps: logging, clean errors, records.

A failed step leaves `<first output stem>.error.json` beside that output (vestnik.layout): the
rule, the job's wildcards, whether the input was refused ("input", a VestnikError) or the code
failed ("internal", with its traceback), and the log file. The service and `vestnik status`
read these records instead of scraping logs; a step that later succeeds removes its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vestnik.config import assume_checked_blocks
from vestnik.errors import VestnikError
from vestnik.io import remove_stale_temps, write_json
from vestnik.layout import error_record

log = logging.getLogger("vestnik")


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


def _step_id(smk: Any) -> dict:
    wildcards = {key: str(value) for key, value in dict(smk.wildcards.items()).items()}
    return {"rule": smk.rule, "wildcards": wildcards}


def read_error_record(path: str | Path) -> dict | None:
    """An error record, or None when the file is missing or unreadable."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "message" in record else None


def _record_failure(smk: Any, kind: str, message: str, trace: str | None) -> None:
    if not smk.output:
        return
    record = {
        **_step_id(smk),
        "kind": kind,
        "message": message,
        "traceback": trace,
        "log": str(smk.log[0]) if smk.log else None,
        "time": time.time(),
    }
    try:
        write_json(error_record(smk.output[0]), record)
    except (OSError, VestnikError) as exc:  # a full disk must not hide the step's own error
        log.warning("no error record written: %s", exc)


def _forget_failure(smk: Any) -> None:
    if not smk.output:
        return
    path = error_record(smk.output[0])
    record = read_error_record(path)
    if record and {k: record.get(k) for k in ("rule", "wildcards")} == _step_id(smk):
        path.unlink(missing_ok=True)


def run_step(smk: Any, step: Callable[[], object], blocks_checked: bool = False) -> None:
    """Run one step inside a Snakemake job and exit 1 on failure.

    A VestnikError (refused input) is logged as its message only; any other exception is
    logged with its traceback, so the job's log file always says why the job failed.

    `blocks_checked` is for steps whose every settings block comes from the rule's params or the
    config, both checked by the workflow before the job ran: their blocks are not checked again
    (`config.assume_checked_blocks`). Steps that build blocks of their own leave it off.
    """
    setup_logging(smk.log[0] if smk.log else None)
    removed = remove_stale_temps(smk.output)
    if removed:
        log.info("removed temporary files left by a killed run: %s", [str(p) for p in removed])
    try:
        with assume_checked_blocks() if blocks_checked else contextlib.nullcontext():
            step()
    except VestnikError as exc:
        log.error("%s (rule %s)", exc, smk.rule)
        _record_failure(smk, "input", str(exc), None)
        sys.exit(1)
    except Exception as exc:
        trace = traceback.format_exc()
        log.error("unexpected %s in rule %s: %s\n%s", type(exc).__name__, smk.rule, exc, trace)
        _record_failure(smk, "internal", f"{type(exc).__name__}: {exc}", trace)
        sys.exit(1)
    _forget_failure(smk)
