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
from collections.abc import Iterable
from pathlib import Path

import soundfile as sf

from vestnik.corpus import METADATA_NAME, WAV_DIR
from vestnik.errors import VestnikError
from vestnik.io import write_tsv

log = logging.getLogger("vestnik.corpus")

SCAN_FIELDS = (
    "entry", "line", "id", "wav", "sample_rate", "channels", "frames",
    "status", "reason", "shard", "text",
)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_CYRILLIC_PLUS_RE = re.compile(r"(?<=[а-яёА-ЯЁ])\+|\+(?=[а-яёА-ЯЁ])")
_VOWELS = "аеёиоуыэюяАЕЁИОУЫЭЮЯ"
MIN_RATE = 16000
"""Below this rate a recording cannot carry the mel band (up to 8 kHz) the models learn."""


def transcript_problem(text: str) -> str:
    """Why a recorded transcript cannot be trusted as the words spoken ('' when it can).

    A '+' stress mark must stand before a vowel; before a consonant or at a word's end it is
    a typo. Digits are spelled by the normaliser, as for synthesis.
    """
    from vestnik.text.normalize import has_speakable

    for m in _CYRILLIC_PLUS_RE.finditer(text):
        after = text[m.end():m.end() + 1]
        if not after or after not in _VOWELS:
            where = "at a word's end" if not after.isalpha() else f"before the consonant '{after}'"
            return f"stress mark '+' {where} (column {m.start() + 1})"
    if not has_speakable(text):
        return "transcript has nothing speakable"
    return ""


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
    problem = transcript_problem(row["text"])
    if problem:
        return {**row, "status": "rejected", "reason": problem}
    return row


def _check_wav(path: Path, source_rate: int | None) -> dict:
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
    if info.samplerate < MIN_RATE:
        reason = f"sample rate {info.samplerate} Hz is below {MIN_RATE} Hz (no band above 4 kHz)"
        return {**found, "status": "rejected", "reason": reason}
    repairs = []
    if source_rate and info.samplerate != source_rate:
        repairs.append(f"sample rate {info.samplerate} Hz instead of {source_rate} (resampled)")
    if info.channels != 1:
        repairs.append(f"{info.channels} channels (downmixed)")
    if repairs:
        return {**found, "status": "repaired", "reason": "; ".join(repairs)}
    return {**found, "status": "ok", "reason": ""}


def _common_rate(paths: Iterable[Path]) -> int | None:
    """The most common sample rate among readable wavs (None when none is readable)."""
    rates: Counter[int] = Counter()
    for path in paths:
        try:
            rates[sf.info(str(path)).samplerate] += 1
        except (sf.LibsndfileError, RuntimeError):
            continue
    return rates.most_common(1)[0][0] if rates else None


def scan_corpus(
    root: str | os.PathLike, out_tsv: str | os.PathLike, shards: int,
    source_rate: int | None = None,
) -> list[dict]:
    """Write scan.tsv: one row per metadata line and per orphan wav, usable rows given a shard.

    Each file is read at its own rate; `source_rate` (None: the corpus's most common rate) is
    the rate the corpus should have, and a file at another rate is marked repaired (resampled).
    """
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
    if source_rate is None:
        source_rate = _common_rate(wav_names.values())
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
