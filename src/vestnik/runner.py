"""Adapter between Snakemake jobs and vestnik steps: logging, clean errors, records.

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
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vestnik.config import assume_checked_blocks
from vestnik.errors import VestnikError
from vestnik.io import remove_stale_temps, write_json
from vestnik.layout import error_record

log = logging.getLogger("vestnik")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | None = None) -> None:
    """Log to stderr, and to `log_path` when given (Snakemake's per-job log file)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format=LOG_FORMAT,
        handlers=handlers,
        force=True,
    )


@dataclass(frozen=True)
class StepJob:
    """What `run_step` knows of its job: the rule, wildcards, output files and log file."""

    rule: str
    wildcards: dict[str, str]
    output: list[str]
    log: str | None = None

    @classmethod
    def of(cls, smk: Any) -> StepJob:
        """The job of a Snakemake `script:` (its `snakemake` object)."""
        return cls(
            rule=smk.rule,
            wildcards={key: str(value) for key, value in dict(smk.wildcards.items()).items()},
            output=[str(path) for path in smk.output],
            log=str(smk.log[0]) if smk.log else None,
        )


def _step_id(job: StepJob) -> dict:
    return {"rule": job.rule, "wildcards": job.wildcards}


def read_error_record(path: str | Path) -> dict | None:
    """An error record, or None when the file is missing or unreadable."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "message" in record else None


def _record_failure(job: StepJob, kind: str, message: str, trace: str | None) -> None:
    if not job.output:
        return
    record = {
        **_step_id(job),
        "kind": kind,
        "message": message,
        "traceback": trace,
        "log": job.log,
        "time": time.time(),
    }
    try:
        write_json(error_record(job.output[0]), record)
    except (OSError, VestnikError) as exc:  # a full disk must not hide the step's own error
        log.warning("no error record written: %s", exc)


def _forget_failure(job: StepJob) -> None:
    if not job.output:
        return
    path = error_record(job.output[0])
    record = read_error_record(path)
    if record and {k: record.get(k) for k in ("rule", "wildcards")} == _step_id(job):
        path.unlink(missing_ok=True)


def _run(job: StepJob, step: Callable[[], object], blocks_checked: bool) -> Exception | None:
    """Run `step`; log and record a failure and return it, or None when it succeeded."""
    removed = remove_stale_temps(job.output)
    if removed:
        log.info("removed temporary files left by a killed run: %s", [str(p) for p in removed])
    try:
        with assume_checked_blocks() if blocks_checked else contextlib.nullcontext():
            step()
    except VestnikError as exc:
        log.error("%s (rule %s)", exc, job.rule)
        _record_failure(job, "input", str(exc), None)
        return exc
    except Exception as exc:
        trace = traceback.format_exc()
        log.error("unexpected %s in rule %s: %s\n%s", type(exc).__name__, job.rule, exc, trace)
        _record_failure(job, "internal", f"{type(exc).__name__}: {exc}", trace)
        return exc
    _forget_failure(job)
    return None


def run_step(
    smk: StepJob | Any, step: Callable[[], object], blocks_checked: bool = False
) -> None:
    """Run one step inside a Snakemake job (a StepJob, or a script's `snakemake` object) and
    exit 1 on failure.

    A VestnikError (refused input) is logged as its message only; any other exception is
    logged with its traceback, so the job's log file always says why the job failed.

    `blocks_checked` is for steps whose every settings block comes from the rule's params or the
    config, both checked by the workflow before the job ran: their blocks are not checked again
    (`config.assume_checked_blocks`). Steps that build blocks of their own leave it off.
    """
    job = smk if isinstance(smk, StepJob) else StepJob.of(smk)
    setup_logging(job.log)
    if _run(job, step, blocks_checked) is not None:
        sys.exit(1)


class StepFailed(RuntimeError):
    """A step run inside the workflow's process failed; its log says why."""


@contextlib.contextmanager
def _thread_log(log_path: str | None) -> Iterator[None]:
    """The vestnik logger's records from this thread, and only those, to stderr and into
    `log_path`, as `setup_logging` does for a job's process: other threads run other jobs."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    thread = threading.get_ident()
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(lambda record: record.thread == thread)
        log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()


def run_in_workflow(job: StepJob, step: Callable[[], object]) -> None:
    """Run one step in Snakemake's own process (a local `run:` rule) and raise StepFailed on
    failure, with the same log file and error record as `run_step`.

    For steps of a few milliseconds, which a process of their own would cost ten times over.
    The workflow checked the step's settings blocks in this process already, so checking them
    again costs nothing worth saving.
    """
    with _thread_log(job.log):
        failure = _run(job, step, blocks_checked=False)
    if failure is not None:
        raise StepFailed(f"rule {job.rule} failed: {failure} (log: {job.log})") from failure
