"""The festvox-ru corpus (Debian's `festvox-ru`): real Russian speech turned into RUSLAN's layout.

The package holds one male speaker reading literary prose: `wav/ru_NNNN.wav` (16 kHz, 16-bit,
mono), `etc/txt.done.data` (`( ru_0001 "text" )`, with '+' before stressed vowels) and
hand-checked phone labels `lab/ru_NNNN.lab` (Xlabel: `END_TIME 125 PHONE`, seconds). It is
fetched without installing it (`apt-get download`, then `dpkg-deb -x`); the conversion keeps
the transcripts as written, marks included, and copies the labels beside the corpus so the
evaluation can compare alignments with them. The licence notice travels with the corpus.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from vestnik.corpus import LABEL_DIR, METADATA_NAME, WAV_DIR
from vestnik.errors import VestnikError
from vestnik.io import atomic_write

log = logging.getLogger("vestnik.corpus")

PACKAGE = "festvox-ru"
VOICE_DIR = "usr/share/festival/voices/russian/msu_ru_nsh_clunits"
COPYRIGHT = "usr/share/doc/festvox-ru/copyright"
NOTICE_NAME = "COPYRIGHT"
_LINE_RE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')
_ADVICE = (f"install apt and dpkg (Debian or Ubuntu), run `apt-get update`, or set "
           f"ruslan.festvox_root to a folder where {PACKAGE}_*.deb was unpacked with dpkg-deb -x")


def voice_dir(root: str | os.PathLike) -> Path:
    """The voice folder (wav/, etc/, lab/) inside an unpacked package, or the folder itself."""
    root = Path(root)
    for candidate in (root / VOICE_DIR, root):
        if (candidate / "etc" / "txt.done.data").is_file() and (candidate / "wav").is_dir():
            return candidate
    raise VestnikError(f"no {PACKAGE} voice here (expected {VOICE_DIR}/etc/txt.done.data)",
                       path=root)


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which(command[0]) is None:
        raise VestnikError(f"`{command[0]}` is not available to fetch {PACKAGE}: {_ADVICE}")
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def download(folder: str | os.PathLike) -> Path:
    """Unpack the festvox-ru package into `folder` (apt-get download + dpkg-deb -x); its root.

    A package already unpacked there is reused. Nothing is installed into the system. The
    folder is made absolute: apt-get and dpkg-deb run inside it.
    """
    folder = Path(folder).resolve()
    unpacked = folder / "unpacked"
    if (unpacked / VOICE_DIR / "etc" / "txt.done.data").is_file():
        return unpacked
    folder.mkdir(parents=True, exist_ok=True)
    debs = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        result = _run(["apt-get", "download", PACKAGE], folder)
        debs = sorted(folder.glob(f"{PACKAGE}_*.deb"))
        if result.returncode != 0 or not debs:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise VestnikError(f"apt-get download {PACKAGE} failed ({detail[0]}): {_ADVICE}",
                               path=folder)
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=folder))
    result = _run(["dpkg-deb", "-x", str(debs[-1]), str(staging)], folder)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise VestnikError(f"dpkg-deb could not unpack the package ({result.stderr.strip()})",
                           path=debs[-1])
    shutil.rmtree(unpacked, ignore_errors=True)
    staging.rename(unpacked)
    log.info("unpacked %s into %s", debs[-1].name, unpacked)
    return unpacked


def read_transcripts(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(id, text) of every line of a festival `txt.done.data`, in file order.

    A line that does not parse keeps its raw text under the id `line_N`, so the scan rejects it
    with a reason instead of it vanishing.
    """
    rows = []
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        m = _LINE_RE.match(line.strip())
        rows.append((m.group(1), m.group(2)) if m else (f"line_{number}", ""))
    return rows


def read_labels(path: str | os.PathLike) -> list[tuple[float, float, str]]:
    """(start, end, phone) in seconds from an Xlabel file; a phone starts where the last ended."""
    phones, start, body = [], 0.0, False
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not body:
            body = line.strip() == "#"
            continue
        fields = line.split()
        if len(fields) < 3:
            continue
        end = float(fields[0])
        phones.append((start, end, fields[-1]))
        start = end
    return phones


def convert(source: str | os.PathLike, root: str | os.PathLike) -> dict:
    """Write the RUSLAN layout under `root` from an unpacked package (or its voice folder).

    `ruslan_dataset/<id>.wav` are copies of the recordings, the metadata holds every transcript
    line as written (a missing recording is left for the scan to reject), `labels/<id>.lab` the
    phone labels and COPYRIGHT the package's licence notice.
    """
    voice = voice_dir(source)
    root = Path(root)
    wavs, labels = root / WAV_DIR, root / LABEL_DIR
    for folder in (wavs, labels):
        folder.mkdir(parents=True, exist_ok=True)
    rows = read_transcripts(voice / "etc" / "txt.done.data")
    copied = 0
    for ident, _ in rows:
        for src, dst in ((voice / "wav" / f"{ident}.wav", wavs / f"{ident}.wav"),
                         (voice / "lab" / f"{ident}.lab", labels / f"{ident}.lab")):
            if src.is_file() and not (dst.is_file() and dst.stat().st_size == src.stat().st_size):
                with atomic_write(dst) as tmp:
                    shutil.copyfile(src, tmp)
        copied += (wavs / f"{ident}.wav").is_file()
    notice = Path(str(voice).removesuffix(VOICE_DIR)) / COPYRIGHT
    if notice.is_file():
        with atomic_write(root / NOTICE_NAME) as tmp:
            shutil.copyfile(notice, tmp)
    lines = [f"{ident}|{text}" for ident, text in rows]
    with atomic_write(root / METADATA_NAME) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("festvox-ru: %d transcript lines, %d recordings -> %s", len(rows), copied, root)
    return {"lines": len(rows), "recordings": copied}
