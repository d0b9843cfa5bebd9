"""The unit of lip-sync work shared by every engine: a run of global frames and its audio."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vestnik.avatar import Avatar
from vestnik.lipsync.face import Face


@dataclass
class ChunkJob:
    """Render global frames [start_frame, start_frame + n_frames) of a job.

    `audio` holds the chunk's speech plus context on both sides; `audio[0]` is at global speech
    time `audio_start` seconds. Global frame k covers [k / fps, (k + 1) / fps). Engines must
    derive everything from global times, so that a chunk renders exactly the frames that one
    long job would. `events` are speech.json events with global times, or None when the job's
    input was a recording. `faces` are the avatar's faces from the workflow's faces file (one
    per avatar frame), or None for the engine to find them.
    """

    avatar: Avatar
    audio: np.ndarray
    sample_rate: int
    audio_start: float
    start_frame: int
    n_frames: int
    fps: float
    events: list[dict] | None = None
    faces: list[Face | None] | None = None

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.n_frames
