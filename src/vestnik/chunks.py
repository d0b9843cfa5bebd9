"""Chunk planning: cut speech into pieces for parallel lip-sync, in pauses and on frame edges.

Cuts fall on video frame boundaries so that chunk videos concatenate into exactly the frames of
one long render, and in the quietest window near each ideal cut so no cut splits a sound.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from vestnik.config import block_settings
from vestnik.io import read_tsv, write_tsv

ENERGY_WINDOW = 0.04
"""Seconds of audio around a candidate cut whose RMS decides how quiet the cut is."""


@dataclass(frozen=True)
class Chunk:
    """One chunk: global frames [start_frame, end_frame) and the audio its wav holds."""

    chunk: int
    start_frame: int
    end_frame: int
    start: float
    end: float
    audio_start: float
    audio_end: float

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame


def total_frames(n_samples: int, sample_rate: int, fps: float) -> int:
    """Frames needed to cover the whole speech (the last frame may run past the end)."""
    return max(1, math.ceil(n_samples * fps / sample_rate - 1e-9))


def chunk_count(
    duration: float, workers: int, max_seconds: float | None, min_seconds: float
) -> int:
    """How many chunks: `workers`, more if `max_seconds` demands, fewer for short speech."""
    count = workers
    if max_seconds:
        count = max(count, math.ceil(duration / max_seconds))
    return max(1, min(count, math.floor(duration / min_seconds)))


def _frame_energy(samples: np.ndarray, sample_rate: int, fps: float, frames: np.ndarray):
    half = max(1, int(ENERGY_WINDOW * sample_rate / 2))
    squares = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    centres = np.round(frames * sample_rate / fps).astype(np.int64)
    lo = np.clip(centres - half, 0, len(samples))
    hi = np.clip(centres + half, 0, len(samples))
    return (squares[hi] - squares[lo]) / np.maximum(hi - lo, 1)


def plan_chunks(
    samples: np.ndarray,
    sample_rate: int,
    fps: float,
    **chunk_settings: Any,
) -> list[Chunk]:
    """Plan chunks that cover every frame exactly once, each cut in the quietest nearby frame edge.

    `chunk_settings` is a `chunks` block (workers, max_seconds, min_seconds, search_window,
    context; defaults and ranges in the schema). `context` seconds of audio on each side are
    included in the chunk's wav, because an engine looks beyond a frame's own time span (an
    envelope window, a 16-frame mel window).
    """
    settings = block_settings("chunks", chunk_settings)
    workers, max_seconds = settings["workers"], settings["max_seconds"]
    min_seconds, search_window = settings["min_seconds"], settings["search_window"]
    context = settings["context"]
    n_frames = total_frames(len(samples), sample_rate, fps)
    duration = len(samples) / sample_rate
    count = chunk_count(duration, workers, max_seconds, min_seconds)
    reach = max(0, int(search_window * fps))
    min_frames = max(1, int(min_seconds * fps / 2))
    cuts = [0]
    for k in range(1, count):
        ideal = round(k * n_frames / count)
        lo = max(cuts[-1] + min_frames, ideal - reach)
        hi = min(n_frames - min_frames * (count - k), ideal + reach)
        if hi < lo:
            continue
        candidates = np.arange(lo, hi + 1)
        energy = _frame_energy(samples, sample_rate, fps, candidates)
        distance = np.abs(candidates - ideal) / max(reach, 1)
        cuts.append(int(candidates[np.argmin(energy * (1.0 + 0.05 * distance))]))
    cuts.append(n_frames)
    chunks = []
    for index, (first, last) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        start, end = first / fps, last / fps
        chunks.append(
            Chunk(
                chunk=index,
                start_frame=first,
                end_frame=last,
                start=round(start, 6),
                end=round(end, 6),
                audio_start=round(max(0.0, start - context), 6),
                audio_end=round(min(duration, end + context), 6),
            )
        )
    return chunks


def write_plan(path: str | os.PathLike, chunks: list[Chunk]) -> None:
    """Write chunks.tsv atomically (header + one row per chunk)."""
    write_tsv(path, [f.name for f in fields(Chunk)], [asdict(c) for c in chunks])


def read_plan(path: str | os.PathLike) -> list[Chunk]:
    """Read chunks.tsv back into Chunk rows."""
    return [
        Chunk(**{f.name: int(row[f.name]) if f.type == "int" else float(row[f.name])
                 for f in fields(Chunk)})
        for row in read_tsv(path)
    ]


def chunk_samples(samples: np.ndarray, sample_rate: int, chunk: Chunk) -> np.ndarray:
    """The slice of the speech that a chunk's wav holds (its frames plus context)."""
    lo = round(chunk.audio_start * sample_rate)
    hi = round(chunk.audio_end * sample_rate)
    return samples[lo:hi]
