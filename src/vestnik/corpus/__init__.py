"""Speech corpora in RUSLAN's layout: building one, scanning it, preprocessing and splitting it.

A corpus root holds `ruslan_dataset/NNNNNN.wav` and `metadata_RUSLAN_22200.csv` (`id|text`
per line). The eSpeak-built demo corpus and the real RUSLAN download share that layout, so the
workflow swaps one for the other through `ruslan.root` alone.
"""

from __future__ import annotations

from vestnik import layout

METADATA_NAME = layout.CORPUS_METADATA_NAME
WAV_DIR = layout.CORPUS_WAVS_NAME
SOURCE_RATE = 44100
TARGET_RATE = 22050
