"""A small speech corpus in RUSLAN's exact layout, spoken by eSpeak NG.

Tests, CI and the training demo need real speech in the real corpus format without a 24-hour
download; each sentence gets its own speaking rate and pitch so the vocoder sees some variety.
Audio is resampled to RUSLAN's 44.1 kHz so the preprocessing path is the same as for RUSLAN.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from vestnik.corpus import METADATA_NAME, SOURCE_RATE, WAV_DIR
from vestnik.errors import VestnikError
from vestnik.io import atomic_write, write_text

log = logging.getLogger("vestnik.corpus")

CORPUS_PAUSE = 0.3
"""Seconds between the pieces of a long corpus sentence (shorter than a job's default)."""
RATES = (135, 150, 165, 180, 195, 210)
PITCHES = (30, 40, 50, 60, 70)


def read_sentences(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 text file, one sentence each."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VestnikError(f"cannot read the sentences ({exc})", path=path) from exc
    sentences = [line.strip() for line in lines if line.strip()]
    if not sentences:
        raise VestnikError("no sentences in the file", path=path)
    return sentences


def voice_for(index: int) -> dict:
    """Speaking rate and pitch of sentence `index` (deterministic, cycling through both grids)."""
    return {"rate": RATES[index % len(RATES)], "pitch": PITCHES[(index * 2) % len(PITCHES)]}


def build_espeak_corpus(
    sentences_file: str | os.PathLike,
    root: str | os.PathLike,
    limit: int | None = None,
    voice: str = "ru",
) -> int:
    """Write `root/ruslan_dataset/NNNNNN.wav` (44.1 kHz, 16-bit) and the `id|text` metadata."""
    from vestnik.config import engine_settings
    from vestnik.tts import espeak

    base = engine_settings("tts", "espeak", {"voice": voice, "sentence_pause": CORPUS_PAUSE})
    root = Path(root)
    sentences = read_sentences(sentences_file)[:limit]
    wav_dir = root / WAV_DIR
    wav_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, sentence in enumerate(sentences):
        ident = f"{index + 1:06d}"
        speech = espeak.synthesize(sentence, **{**base, **voice_for(index)})
        audio = soxr.resample(speech.samples.astype(np.float64), speech.sample_rate, SOURCE_RATE,
                              quality="VHQ")
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        with atomic_write(wav_dir / f"{ident}.wav") as tmp:
            sf.write(str(tmp), pcm, SOURCE_RATE, subtype="PCM_16", format="WAV")
        lines.append(f"{ident}|{sentence}")
    write_text(root / METADATA_NAME, "\n".join(lines) + "\n")
    log.info("eSpeak corpus: %d utterances in %s", len(lines), root)
    return len(lines)
