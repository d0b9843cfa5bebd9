"""Speech corpora in RUSLAN's layout: building one, scanning it, preprocessing and splitting it.

A corpus root holds `ruslan_dataset/NNNNNN.wav` and `metadata_RUSLAN_22200.csv` (`id|text`
per line). The eSpeak-built demo corpus and the real RUSLAN download share that layout, so the
workflow swaps one for the other through `ruslan.root` alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vestnik.io import atomic_write

METADATA_NAME = "metadata_RUSLAN_22200.csv"
WAV_DIR = "ruslan_dataset"
SOURCE_RATE = 44100
TARGET_RATE = 22050


def _clean(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def write_tsv(
    path: str | os.PathLike, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> None:
    """Write a tab-separated table atomically; tabs and newlines inside values become spaces."""
    lines = ["\t".join(fields)]
    lines += ["\t".join(_clean(row.get(field)) for field in fields) for row in rows]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a table written by `write_tsv`, as dicts keyed by the header."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:] if line]
