"""A voice folder's format, its checked loading, and the gate a shipped voice must pass.

Every file of a folder is listed in `voice.json` with its size and SHA-256, so a file that is
missing, cut short or replaced is refused by name before any synthesis. This module imports no
torch: the `voice` TTS engine loads folders with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vestnik.acoustic import symbols
from vestnik.errors import VestnikError
from vestnik.provenance import sha256_file

FORMAT = "vestnik-voice-1"
MANIFEST = "voice.json"
WEIGHTS = ("acoustic.pt", "generator.pt")
"""The torch files (what `neural` loads, and what further training starts from)."""
GRAPHS = ("encoder.onnx", "decoder.onnx", "generator.onnx")
"""The ONNX graphs the `voice` engine runs (vestnik.voice.onnx_export)."""
DOCUMENTS = ("README.md", "COPYRIGHT", "val_ids.txt", "metrics.json")
FILES = (*WEIGHTS, *GRAPHS, *DOCUMENTS)
"""Every file of a voice folder besides voice.json."""
MAX_FILE_BYTES = 16 * 1000 * 1000
"""The largest file a shipped voice may hold (16 MB): weights beyond it are stored as fp16."""
PESQ_WB_MIN = 2.5
"""Shipping bar: the vocoder's copy-synthesis wide-band PESQ on the held-out recordings."""
BOUNDARY_ERROR_MAX_MS = 30.0
"""Shipping bar: median phone-boundary error of the acoustic model's alignment against the
corpus's human labels on the held-out recordings (milliseconds)."""


def gate_problems(metrics: Mapping[str, Any]) -> list[str]:
    """Why a voice with these held-out metrics may not ship (empty when it may).

    `metrics` is {"vocoder": summary, "acoustic": summary} as vestnik.vocoder.evaluate and
    vestnik.acoustic.evaluate write them; a missing figure is a reason too.
    """
    problems = []
    pesq = (metrics.get("vocoder") or {}).get("pesq_wb")
    if pesq is None:
        problems.append("no held-out PESQ-wb (install the `eval` extra: pesq)")
    elif not pesq >= PESQ_WB_MIN:
        problems.append(f"vocoder PESQ-wb {pesq:.3f} is under the bar {PESQ_WB_MIN}")
    boundary = (metrics.get("acoustic") or {}).get("boundary_error_ms")
    if boundary is None:
        problems.append("no held-out boundary error (the corpus needs phone labels)")
    elif not boundary <= BOUNDARY_ERROR_MAX_MS:
        problems.append(f"boundary error {boundary:.1f} ms is over the bar "
                        f"{BOUNDARY_ERROR_MAX_MS:.0f} ms")
    return problems


def shipping_gate(metrics: Mapping[str, Any], *, force: bool = False) -> dict[str, Any]:
    """The gate record of a voice: refuses (VestnikError) a voice under the bar unless `force`
    (for tests and trials), in which case the record says it was forced and why."""
    problems = gate_problems(metrics)
    if problems and not force:
        raise VestnikError("the voice is not good enough to ship: " + "; ".join(problems)
                           + " (train further; `--force` builds it anyway, marked unshippable)")
    return {"passed": not problems, "forced": bool(problems and force), "problems": problems,
            "bars": {"pesq_wb_min": PESQ_WB_MIN, "boundary_error_max_ms": BOUNDARY_ERROR_MAX_MS}}


def file_records(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{name: {"bytes", "sha256"}} of files in `folder`."""
    return {name: {"bytes": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)}
            for name in names}


@dataclass(frozen=True)
class VoiceFolder:
    """A checked voice folder: its manifest and the paths of its files."""

    folder: Path
    manifest: dict[str, Any]

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.folder.name))

    @property
    def add_blank(self) -> bool:
        return bool(self.manifest["add_blank"])

    @property
    def sample_rate(self) -> int:
        return int(self.manifest["mel"]["sample_rate"])

    @property
    def hop(self) -> int:
        return int(self.manifest["mel"]["hop"])


def read_voice(folder: str | os.PathLike, files: Iterable[str] = FILES, *,
               job: str | None = None) -> VoiceFolder:
    """The voice in `folder`, with `files` checked against voice.json (present, same size,
    same SHA-256); refuses another symbol table. Errors name the file at fault."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        raise VestnikError("voice folder not found", path=folder, job=job)
    if not manifest_path.is_file():
        raise VestnikError(f"voice file missing: {MANIFEST} (not a voice folder, or an "
                           "unfinished one; rebuild it with `vestnik voice export`)",
                           path=manifest_path, job=job)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VestnikError(f"voice file corrupt: {MANIFEST} ({exc})", path=manifest_path,
                           job=job) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise VestnikError(f"voice file corrupt: {MANIFEST} is not a {FORMAT} manifest",
                           path=manifest_path, job=job)
    listed = manifest.get("files") or {}
    for name in files:
        path = folder / name
        record = listed.get(name)
        if record is None:
            raise VestnikError(f"voice file {name} is not listed in {MANIFEST}", path=path,
                               job=job)
        if not path.is_file():
            raise VestnikError(f"voice file missing: {name}", path=path, job=job)
        size = path.stat().st_size
        if size != record.get("bytes") or sha256_file(path) != record.get("sha256"):
            raise VestnikError(
                f"voice file corrupt: {name} ({size} bytes; {MANIFEST} lists "
                f"{record.get('bytes')} bytes and another SHA-256): restore the folder or "
                "rebuild it", path=path, job=job)
    table = manifest.get("symbols") or {}
    if table != symbols.table_record():
        raise VestnikError(
            f"the voice was trained on symbol table {table.get('version')!r}, this code uses "
            f"{symbols.VERSION!r}; rebuild the voice or use the matching code",
            path=manifest_path, job=job)
    return VoiceFolder(folder, manifest)
