"""Second pass, one shard per job: audio cleaned to 22,050 Hz 16-bit wavs plus log-mel features.

Each usable row is decoded, downmixed, resampled with soxr, trimmed of leading and trailing
silence, peak-normalised, quantised to 16 bits, and its mel features are computed from exactly
the quantised samples that training will read back. Everything is deterministic (fixed soxr
quality, one torch thread), so a rerun writes bitwise identical files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from vestnik.config import block_settings
from vestnik.corpus import TARGET_RATE
from vestnik.io import atomic_write, read_tsv, write_tsv

log = logging.getLogger("vestnik.corpus")

ITEM_FIELDS = ("entry", "id", "status", "reason", "wav", "mel", "samples", "frames", "seconds")


@dataclass(frozen=True)
class CleanSettings:
    """How a recording is cleaned (the `ruslan:` config block; defaults in the schema)."""

    trim_db: float
    trim_margin: float
    peak: float
    min_seconds: float
    max_clipped: float

    @classmethod
    def from_config(cls, ruslan: dict | None = None) -> CleanSettings:
        """The cleaning settings of a `ruslan:` block, the schema's defaults filling gaps."""
        block = block_settings("ruslan", ruslan)
        return cls(**{f.name: block[f.name] for f in fields(cls)})


CLIP_LEVEL = 32766 / 32768
"""A sample this close to full scale counts as clipped."""


class Unusable(Exception):
    """A recording that decodes but cannot be used for training (reason in the message)."""


def speech_bounds(samples: np.ndarray, rate: int, top_db: float, margin: float) -> tuple[int, int]:
    """(start, end) samples of the stretch louder than `top_db` below the loudest frame.

    A margin of `margin` seconds is kept on each side so word onsets and decays survive.
    """
    frame, hop = 1024, 256
    if samples.size < frame:
        return 0, samples.size
    count = 1 + (samples.size - frame) // hop
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    rms = np.sqrt(np.mean(samples[index].astype(np.float64) ** 2, axis=1))
    level = 20 * np.log10(np.maximum(rms, 1e-10) / max(rms.max(), 1e-10))
    loud = np.flatnonzero(level > -top_db)
    pad = int(round(margin * rate))
    centre = (frame - hop) // 2  # each frame stands for the hop-long stretch at its centre
    start = max(0, loud[0] * hop + centre - pad)
    end = min(samples.size, loud[-1] * hop + centre + hop + pad)
    return int(start), int(end)


def trim_silence(samples: np.ndarray, rate: int, top_db: float, margin: float) -> np.ndarray:
    """Cut leading and trailing frames quieter than `top_db` below the loudest frame."""
    start, end = speech_bounds(samples, rate, top_db, margin)
    return samples[start:end]


def _mono_at_target_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    mono = np.asarray(samples, dtype=np.float64)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    if rate != TARGET_RATE and np.all(np.isfinite(mono)):
        mono = soxr.resample(mono, rate, TARGET_RATE, quality="VHQ")
    return mono


def trim_offset(path: str | os.PathLike, settings: CleanSettings) -> float:
    """Seconds the cleaning cut from the start of a recording: the cleaned clip's time zero on
    the recording's own clock (for comparing with labels made on the original)."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = _mono_at_target_rate(data, rate)
    return speech_bounds(mono, TARGET_RATE, settings.trim_db, settings.trim_margin)[0] / TARGET_RATE


def clean_audio(samples: np.ndarray, rate: int, settings: CleanSettings) -> np.ndarray:
    """(frames, channels) float audio at `rate` -> int16 mono at 22,050 Hz, trimmed, normalised."""
    source = np.asarray(samples, dtype=np.float64)
    if not np.all(np.isfinite(source)):
        raise Unusable("audio holds NaN or infinite samples")
    clipped = float(np.mean(np.abs(source) >= CLIP_LEVEL)) if source.size else 0.0
    if clipped > settings.max_clipped:
        raise Unusable(f"clipped ({clipped:.2%} of samples at full scale, "
                       f"more than {settings.max_clipped:.2%})")
    mono = _mono_at_target_rate(source, rate)
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak < 1e-4:
        raise Unusable("audio is silent")
    mono = trim_silence(mono, TARGET_RATE, settings.trim_db, settings.trim_margin)
    seconds = mono.size / TARGET_RATE
    if seconds < settings.min_seconds:
        raise Unusable(f"too short after trimming ({seconds:.2f} s < {settings.min_seconds} s)")
    mono = mono * (settings.peak / float(np.max(np.abs(mono))))
    return np.clip(np.round(mono * 32767.0), -32768, 32767).astype(np.int16)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def process_shard(
    root: str | os.PathLike,
    scan_tsv: str | os.PathLike,
    shard: int,
    out_dir: str | os.PathLike,
    settings: CleanSettings,
) -> list[dict]:
    """Clean every usable row of `shard`; writes wavs/, mels/ and items.tsv under `out_dir`."""
    import torch

    from vestnik.mel import log_mel

    torch.set_num_threads(1)
    root, out_dir = Path(root), Path(out_dir)
    (out_dir / "wavs").mkdir(parents=True, exist_ok=True)
    (out_dir / "mels").mkdir(parents=True, exist_ok=True)
    items = []
    for row in read_tsv(scan_tsv):
        if row["shard"] == "" or int(row["shard"]) != shard:
            continue
        item = {"entry": row["entry"], "id": row["id"], "status": "ok", "reason": ""}
        try:
            try:
                data, rate = sf.read(str(root / row["wav"]), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise Unusable(f"wav cannot be decoded ({exc})") from exc
            if data.size == 0:
                raise Unusable("wav holds no samples")
            pcm = clean_audio(data, rate, settings)
        except Unusable as exc:
            item.update(status="rejected", reason=str(exc))
            items.append(item)
            continue
        wav_path = out_dir / "wavs" / f"{row['id']}.wav"
        mel_path = out_dir / "mels" / f"{row['id']}.npy"
        with atomic_write(wav_path) as tmp:
            sf.write(str(tmp), pcm, TARGET_RATE, subtype="PCM_16", format="WAV")
        mel = log_mel(pcm.astype(np.float32) / 32768.0)
        _save_npy(mel_path, mel.astype(np.float32))
        item.update(
            wav=str(wav_path), mel=str(mel_path), samples=pcm.size, frames=mel.shape[1],
            seconds=f"{pcm.size / TARGET_RATE:.3f}",
        )
        items.append(item)
    write_tsv(out_dir / "items.tsv", ITEM_FIELDS, items)
    rejected = sum(item["status"] == "rejected" for item in items)
    log.info("shard %d: %d items cleaned, %d rejected", shard, len(items) - rejected, rejected)
    return items
