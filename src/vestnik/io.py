"""Atomic file writes: an output either appears complete or not at all."""

from __future__ import annotations

import errno
import fnmatch
import json
import logging
import os
import re
import resource
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from vestnik.errors import VestnikError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
LOW_SPACE_BYTES = 1024**2
"""A write that fails with less than this free beside its file is reported as a full disk."""


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temporary name keeps the suffix so tools that pick a format by extension still work, and
    its mode follows the umask like a plain `open()` would (mkstemp alone gives 0600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        try:
            yield tmp
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        except VestnikError:
            raise
        except Exception as exc:
            reason = disk_full_reason(exc, tmp)
            if reason:
                raise disk_full_error(target, reason, f"{type(exc).__name__}: {exc}") from exc
            raise
        pause_point(target.name)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def disk_full_reason(exc: BaseException, written: Path | None = None) -> str | None:
    """Why a write failed for lack of room, or None when it failed for another reason.

    Libraries report a full disk differently (OSError 28, libsndfile's "system error", torch's
    "unexpected pos"), so besides the errno chain the free space beside `written` and the
    process's file-size limit are checked.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return room_reason(written)


def room_reason(written: Path | None) -> str | None:
    """A full disk or a reached file-size limit where `written` lies, else None."""
    if written is None:
        return None
    try:
        if shutil.disk_usage(written.parent).free < LOW_SPACE_BYTES:
            return os.strerror(errno.ENOSPC)
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and written.stat().st_size >= limit:
            return os.strerror(errno.EFBIG)
    except OSError:
        return None
    return None


def tool_disk_full_reason(code: int, report: str, written: Path | None) -> str | None:
    """`disk_full_reason` for a failed child process (ffmpeg): its exit code and its report.

    A child's errno never reaches us, so the report's strerror text counts, and so does death by
    SIGXFSZ (the file-size limit's signal, which Python ignores but its children do not).
    """
    for number in sorted(DISK_FULL_ERRNOS):
        if os.strerror(number) in report:
            return os.strerror(number)
    if code == -signal.SIGXFSZ:
        return os.strerror(errno.EFBIG)
    return room_reason(written)


def disk_full_error(path: str | os.PathLike, reason: str, detail: str) -> VestnikError:
    """The one message for a write that ran out of room, naming the file."""
    return VestnikError(
        f"could not write the file: {reason} ({detail}); free some space and run again",
        path=path,
    )


def temp_name_pattern(path: str | os.PathLike) -> re.Pattern[str]:
    """Names `atomic_write` gives the temporary files of `path` (mkstemp's 8 random chars)."""
    target = Path(path)
    return re.compile(
        rf"\.{re.escape(target.stem)}\.[A-Za-z0-9_]{{8}}\.tmp{re.escape(target.suffix)}"
    )


def remove_stale_temps(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete temporary files that a killed writer of `paths` left behind; return them.

    Call this only where no other process can be writing the same outputs (a Snakemake job
    owns its outputs while it runs).
    """
    removed = []
    for path in paths:
        target = Path(path)
        if not target.parent.is_dir():
            continue
        pattern = temp_name_pattern(target)
        for entry in target.parent.iterdir():
            if pattern.fullmatch(entry.name) and entry.is_file():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def pause_point(name: str) -> None:
    """Test hook, inert unless VESTNIK_PAUSE_AT is set: a file whose name matches that glob
    pattern waits here, complete but not yet renamed, so a test can kill the run at a known
    moment. The pause is logged, and lasts VESTNIK_PAUSE_SECONDS (default 600)."""
    pattern = os.environ.get("VESTNIK_PAUSE_AT")
    if pattern and fnmatch.fnmatch(name, pattern):
        logging.getLogger("vestnik").warning("VESTNIK_PAUSE_AT: pausing before writing %s", name)
        time.sleep(float(os.environ.get("VESTNIK_PAUSE_SECONDS", "600")))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write JSON (UTF-8, indented, Cyrillic kept readable) atomically."""
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def _tsv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def write_tsv(
    path: str | os.PathLike, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> None:
    """Write a tab-separated table atomically; tabs and newlines inside values become spaces."""
    lines = ["\t".join(fields)]
    lines += ["\t".join(_tsv_cell(row.get(field)) for field in fields) for row in rows]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a table written by `write_tsv`, as dicts keyed by the header."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:] if line]


_Loaded = TypeVar("_Loaded")


def loaded_once(cache: dict, key: tuple, files: Iterable[str | os.PathLike],
                load: Callable[[], _Loaded]) -> _Loaded:
    """What `load` returns, kept in `cache` (one entry per process) under `key` until one of
    `files` changes: a long-lived process (the service) picks up retrained weights."""
    stamps = tuple(Path(p).stat().st_mtime_ns if Path(p).is_file() else None for p in files)
    full_key = (*key, stamps)
    if full_key not in cache:
        cache.clear()
        cache[full_key] = load()
    return cache[full_key]
