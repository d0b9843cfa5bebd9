"""First pass over a corpus: every metadata line and every wav gets a row with a verdict.

Nothing is dropped silently and nothing is fatal: a bad line or file becomes a `rejected` row
with its reason, a fixable one (other sample rate, several channels) a `repaired` row. Only the
header of each wav is read here; decoding happens in the parallel preprocessing shards, which
can still reject a file whose audio turns out to be unusable.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

import soundfile as sf

from vestnik.corpus import METADATA_NAME, SOURCE_RATE, WAV_DIR
from vestnik.errors import VestnikError
from vestnik.io import write_tsv

log = logging.getLogger("vestnik.corpus")

SCAN_FIELDS = (
    "entry", "line", "id", "wav", "sample_rate", "channels", "frames",
    "status", "reason", "shard", "text",
)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _parse_line(raw: bytes, number: int) -> dict:
    """One metadata line -> row with id, text and (if bad) a rejection reason."""
    row = {"line": number, "id": "", "text": "", "status": "ok", "reason": ""}
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    head, sep, tail = raw.partition(b"|")
    row["id"] = head.decode("utf-8", "replace").strip() if sep else ""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        row["text"] = tail.decode("utf-8", "replace").strip()
        reason = f"line is not valid UTF-8 (byte {exc.start})"
        return {**row, "status": "rejected", "reason": reason}
    if not sep:
        row["text"] = line.strip()
        return {**row, "status": "rejected", "reason": "no '|' separator"}
    row["text"] = tail.decode("utf-8").strip()
    if not row["id"]:
        return {**row, "status": "rejected", "reason": "empty id"}
    if not _ID_RE.match(row["id"]):
        return {**row, "status": "rejected", "reason": "id is not a plain file name"}
    if not row["text"]:
        return {**row, "status": "rejected", "reason": "empty text"}
    return row


def _check_wav(path: Path, source_rate: int) -> dict:
    """Header check: (status, reason, sample_rate, channels, frames) of one wav file."""
    found = {"sample_rate": "", "channels": "", "frames": ""}
    if path.stat().st_size == 0:
        return {**found, "status": "rejected", "reason": "empty wav file (0 bytes)"}
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        return {**found, "status": "rejected", "reason": f"unreadable wav ({exc})"}
    found = {"sample_rate": info.samplerate, "channels": info.channels, "frames": info.frames}
    if info.frames == 0:
        return {**found, "status": "rejected", "reason": "wav holds no samples"}
    repairs = []
    if info.samplerate != source_rate:
        repairs.append(f"sample rate {info.samplerate} Hz instead of {source_rate} (resampled)")
    if info.channels != 1:
        repairs.append(f"{info.channels} channels (downmixed)")
    if repairs:
        return {**found, "status": "repaired", "reason": "; ".join(repairs)}
    return {**found, "status": "ok", "reason": ""}


def scan_corpus(
    root: str | os.PathLike, out_tsv: str | os.PathLike, shards: int,
    source_rate: int = SOURCE_RATE,
) -> list[dict]:
    """Write scan.tsv: one row per metadata line and per orphan wav, usable rows given a shard."""
    root = Path(root)
    metadata = root / METADATA_NAME
    wav_dir = root / WAV_DIR
    if not metadata.is_file():
        raise VestnikError(f"corpus metadata not found (expected {METADATA_NAME} in the root)",
                           path=metadata)
    if not wav_dir.is_dir():
        raise VestnikError(f"corpus wav folder not found (expected {WAV_DIR}/ in the root)",
                           path=wav_dir)
    rows: list[dict] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(metadata.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        row = _parse_line(raw.rstrip(b"\r"), number)
        ident = row["id"]
        if ident and row["status"] == "ok":
            if ident in first_line:
                reason = f"duplicate id (first on line {first_line[ident]})"
                row.update(status="rejected", reason=reason)
            else:
                first_line[ident] = number
        rows.append(row)
    wav_names = {p.name: p for p in wav_dir.iterdir() if p.suffix.lower() == ".wav" and p.is_file()}
    claimed: set[str] = set()
    for row in rows:
        name = f"{row['id']}.wav" if _ID_RE.match(row["id"]) else ""
        path = wav_names.get(name)
        row.update(wav="", sample_rate="", channels="", frames="")
        if path is None:
            if row["status"] != "rejected":
                row.update(status="rejected", reason="no wav file for this row")
            continue
        row["wav"] = f"{WAV_DIR}/{name}"
        if row["status"] == "rejected" and name in claimed:
            continue
        claimed.add(name)
        checked = _check_wav(path, source_rate)
        row.update(sample_rate=checked["sample_rate"], channels=checked["channels"],
                   frames=checked["frames"])
        if row["status"] == "ok":
            row.update(status=checked["status"], reason=checked["reason"])
    for name in sorted(set(wav_names) - claimed):
        checked = _check_wav(wav_names[name], source_rate)
        rows.append({
            "line": "", "id": Path(name).stem, "text": "", "wav": f"{WAV_DIR}/{name}",
            "sample_rate": checked["sample_rate"], "channels": checked["channels"],
            "frames": checked["frames"], "status": "rejected", "reason": "no metadata row",
        })
    usable = 0
    for entry, row in enumerate(rows):
        row["entry"] = entry
        row["shard"] = ""
        if row["status"] != "rejected":
            row["shard"] = usable % shards
            usable += 1
    write_tsv(out_tsv, SCAN_FIELDS, rows)
    counts = Counter(row["status"] for row in rows)
    log.info("scanned %s: %d rows, %s", root, len(rows), dict(sorted(counts.items())))
    return rows
