"""Speech corpora in RUSLAN's layout: building one, scanning it, preprocessing and splitting it.

A corpus root holds `ruslan_dataset/NNNNNN.wav` and `metadata_RUSLAN_22200.csv` (`id|text`
per line), and may hold `labels/<id>.lab` phone labels. The eSpeak-built demo corpus, the
festvox-ru conversion and a real RUSLAN download share that layout, so the workflow swaps one
for another through `ruslan.source` (and `ruslan.root` for a corpus of one's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vestnik import layout
from vestnik.errors import VestnikError

METADATA_NAME = layout.CORPUS_METADATA_NAME
WAV_DIR = layout.CORPUS_WAVS_NAME
LABEL_DIR = layout.CORPUS_LABELS_NAME
SOURCES = {"espeak": layout.ESPEAK_CORPUS, "festvox-ru": layout.FESTVOX_CORPUS}
"""Corpus roots the workflow builds itself, by `ruslan.source`; `path` means `ruslan.root`."""
SOURCE_RATE = 44100
TARGET_RATE = 22050


def corpus_root(ruslan: Mapping[str, Any]) -> str:
    """The corpus root the `ruslan:` settings name (a built corpus, or `root` for `path`)."""
    source = ruslan.get("source", "espeak")
    if source in SOURCES:
        return SOURCES[source]
    if source == "path":
        if not ruslan.get("root"):
            raise VestnikError("ruslan.source is 'path' but ruslan.root is not set: point it at "
                               "a folder holding ruslan_dataset/ and " + METADATA_NAME)
        return str(ruslan["root"])
    raise VestnikError(f"unknown ruslan.source '{source}' (known: {', '.join(SOURCES)}, path)")
