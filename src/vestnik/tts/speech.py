"""Synthesised speech: audio plus the sentence, word and phoneme timings every engine reports.

speech.json holds {"sample_rate", "duration", "engine", "text", "events"}; each event is
{"type": "sentence" | "word" | "phoneme", "start": s, "end": s, "text": ...} ("symbol" instead of
"text" for phonemes), sorted by start. Lip-sync reads the events; chunking reads the wav.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from vestnik.errors import VestnikError
from vestnik.io import write_json
from vestnik.media import write_wav

EVENT_TYPES = ("sentence", "word", "phoneme")
_TYPE_RANK = {kind: i for i, kind in enumerate(EVENT_TYPES)}


@dataclass
class Speech:
    """Mono float32 samples in [-1, 1] with timed events (seconds from the start of the audio)."""

    samples: np.ndarray
    sample_rate: int
    events: list[dict] = field(default_factory=list)
    text: str = ""
    engine: str = ""

    def __post_init__(self) -> None:
        self.samples = np.ascontiguousarray(self.samples, dtype=np.float32).reshape(-1)
        self.events = sort_events(self.events)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def to_json(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "duration": round(self.duration, 6),
            "engine": self.engine,
            "text": self.text,
            "events": self.events,
        }

    def save(self, wav_path: str | os.PathLike, json_path: str | os.PathLike) -> None:
        """Write the wav (16-bit PCM) and speech.json, each atomically."""
        write_wav(wav_path, self.samples, self.sample_rate)
        write_json(json_path, self.to_json())

    @classmethod
    def load(cls, wav_path: str | os.PathLike, json_path: str | os.PathLike) -> Speech:
        """Read a speech back from its wav and speech.json."""
        try:
            meta = json.loads(Path(json_path).read_text(encoding="utf-8"))
            samples, rate = sf.read(wav_path, dtype="float32", always_2d=True)
        except (OSError, ValueError, sf.LibsndfileError) as exc:
            raise VestnikError(f"cannot read speech: {exc}", path=wav_path) from exc
        if rate != meta.get("sample_rate"):
            raise VestnikError(
                f"wav is {rate} Hz but {json_path} says {meta.get('sample_rate')} Hz",
                path=wav_path,
            )
        return cls(samples.mean(axis=1), rate, meta.get("events", []), meta.get("text", ""),
                   meta.get("engine", ""))


def sort_events(events: list[dict]) -> list[dict]:
    """Events by start time; at equal starts a sentence comes before its word and phonemes."""
    return sorted(events, key=lambda e: (e["start"], _TYPE_RANK.get(e["type"], len(_TYPE_RANK))))
