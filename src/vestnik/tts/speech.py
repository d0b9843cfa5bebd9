"""Synthesised speech: audio plus the sentence, word and phoneme timings every engine reports.

speech.json holds {"sample_rate", "duration", "engine", "text", "events", "wav_sha256"}; each
event is
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
from vestnik.provenance import sha256_file

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
        """Write the wav (16-bit PCM) and speech.json, each atomically; speech.json records
        the wav's SHA-256, so a wav changed afterwards is caught (`check_pair`)."""
        write_wav(wav_path, self.samples, self.sample_rate)
        write_json(json_path, {**self.to_json(), "wav_sha256": sha256_file(wav_path)})

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


def check_pair(wav_path: str | os.PathLike, json_path: str | os.PathLike) -> None:
    """Refuse a speech wav that is not the one its speech.json describes.

    The timings, duration and text in speech.json hold only for the wav written with them; a
    wav replaced or edited by hand afterwards would be cut and rendered against stale timings.
    """
    try:
        recorded = json.loads(Path(json_path).read_text(encoding="utf-8")).get("wav_sha256")
    except (OSError, ValueError) as exc:
        raise VestnikError(f"cannot read the speech timings: {exc}", path=json_path) from exc
    if recorded and sha256_file(wav_path) != recorded:
        raise VestnikError(
            f"the speech was changed after {Path(json_path).name} was written with it (its "
            "SHA-256 differs), so the timings no longer fit; delete both files to make them "
            "again, or give your recording as the job's `audio:`",
            path=wav_path,
        )


def sort_events(events: list[dict]) -> list[dict]:
    """Events by start time; at equal starts a sentence comes before its word and phonemes."""
    return sorted(events, key=lambda e: (e["start"], _TYPE_RANK.get(e["type"], len(_TYPE_RANK))))
